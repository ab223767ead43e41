"""The ``--out`` folder: camavg replaces its own files there, one by one, and touches nothing else.

``--out`` may be a new folder or an existing one, ``.`` included, and may hold the user's own
files. How a run knows which files are its own: beside its outputs it writes a manifest,
``.camavg-manifest.json``, that lists each file it wrote with the SHA-256 digest of its content.
A file at an output path is camavg's only when the manifest lists that exact content. Before any
work starts, every path the run will write is checked: a folder, a link, or any other file there
(the user's own, or one changed since camavg wrote it) stops the run with an error naming that
path, and nothing is written, moved or deleted.

Each file is written to a temporary file in the same folder and moved onto its name with
``os.replace``, so an interrupted run never leaves a half-written file. The manifest is updated
before each file is replaced, so it always lists what is on disk. An earlier run's output that
this run does not write (``comparisons.json`` of a run with ``--compare``) is removed only while
its content is still what camavg wrote, so a folder never mixes two runs' results. CSV cells that
a spreadsheet would read as a formula are escaped as OWASP recommends for CSV injection.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from camavg_cli.loading import CommandError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What a run may write; the manifest never names anything else, so no manifest, garbled or
# hand-made, can make camavg replace or remove another file.
OUTPUT_FILES = frozenset({"results.json", "results.csv", "comparisons.json", "comparisons.csv", "conclusion.txt", "report.png"})
MANIFEST = ".camavg-manifest.json"
MANIFEST_KIND = "camavg outputs"


def digest(data: bytes) -> str:
    """The SHA-256 of ``data``, as the manifest records it.

    >>> digest(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def _shown(given: str, name: str) -> str:
    """The output path as the user typed its folder: ``results.json`` for ``--out .``."""
    return str(Path(given) / name)


def read_manifest(out: Path, given: str) -> dict[str, list[str]]:
    """``{output name: digests camavg wrote there}`` from ``out``'s manifest; empty without one.

    Raises:
        CommandError: the manifest's path holds something camavg did not write.
    """
    file = out / MANIFEST
    if not os.path.lexists(file):
        return {}
    problem = CommandError(
        f"--out {given}: {_shown(given, MANIFEST)} is not the list of outputs camavg keeps there: "
        f"pass another --out, or move or remove that path."
    )
    if file.is_symlink() or not file.is_file():
        raise problem
    try:
        manifest = json.loads(file.read_bytes())
    except (OSError, ValueError):
        raise problem from None
    files = manifest.get("files") if isinstance(manifest, dict) and manifest.get("kind") == MANIFEST_KIND else None
    if not isinstance(files, dict) or not all(
        name in OUTPUT_FILES and isinstance(digests, list) and all(isinstance(d, str) for d in digests)
        for name, digests in files.items()
    ):
        raise problem
    return files


def _own_file(path: Path, digests: Sequence[str]) -> bool:
    """Whether ``path`` is a plain file whose content camavg wrote (a link never is)."""
    try:
        mode = os.lstat(path).st_mode
        return stat.S_ISREG(mode) and digest(path.read_bytes()) in digests
    except OSError:
        return False


def _refusal(out: Path, given: str, name: str, manifest: Mapping[str, Sequence[str]]) -> str | None:
    """Why camavg may not write ``name`` in ``out``, or None when the path is free or its own file."""
    path = out / name
    if not os.path.lexists(path) or _own_file(path, manifest.get(name, ())):
        return None
    if path.is_dir() and not path.is_symlink():
        return (f"--out {given}: {_shown(given, name)} is a folder, where camavg would write its {name}; "
                f"camavg never replaces it: pass another --out, or move that folder away.")
    return (f"--out {given}: {_shown(given, name)} is not a file camavg wrote (or it was changed since), "
            f"and camavg never replaces it: pass another --out, or move or remove it.")


def check_out(given: str, names: Iterable[str]) -> Path:
    """``--out`` as a Path, checked before any work for a run that writes the files ``names``.

    The folder may exist and hold other files; its parent is made if needed.

    Raises:
        CommandError: ``--out`` names a file; a folder or a file camavg did not write sits where one
            of ``names`` goes; or the place cannot be written.
    """
    out = Path(given).expanduser()
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {given} is a file: name a folder (camavg writes results.json and more into it).")
    if out.is_dir():
        manifest = read_manifest(out, given)
        for name in names:
            refusal = _refusal(out, given, name, manifest)
            if refusal:
                raise CommandError(refusal)
        place = out
    else:
        place = out.absolute().parent
    try:
        place.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".camavg-probe-", dir=place)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise CommandError(
            f"--out {given}: cannot write in {place} ({error.strerror or error}): choose a folder you can write to."
        ) from None
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then move it onto ``path`` in one step."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0o600, made what a plain open() gives
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _write_manifest(out: Path, files: Mapping[str, Sequence[str]]) -> None:
    manifest = {"kind": MANIFEST_KIND,
                "about": "camavg's list of the files it wrote here, with the SHA-256 of each; "
                         "camavg replaces a file here only when it is listed with its content.",
                "files": {name: sorted(set(digests)) for name, digests in sorted(files.items())}}
    _replace(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def write_outputs(out: Path, given: str, files: Mapping[str, bytes]) -> list[Path]:
    """Write ``files`` (``{output name: content}``) into ``out``; returns their paths.

    Each path is checked again (the folder may have changed during the run), then replaced as one
    step. The earlier run's outputs that this run does not write are removed while their content is
    still camavg's, so the folder holds one run's results.

    Raises:
        CommandError: a folder or a file camavg did not write sits where an output goes.
    """
    out.mkdir(parents=True, exist_ok=True)
    earlier = read_manifest(out, given)
    for name in files:
        refusal = _refusal(out, given, name, earlier)
        if refusal:
            raise CommandError(refusal)
    digests = {name: digest(data) for name, data in files.items()}
    # Both contents are listed while a file is being replaced, so an interrupt leaves no file of
    # camavg's that the next run would take for the user's.
    _write_manifest(out, {name: [*earlier.get(name, ()), *([digests[name]] if name in digests else [])]
                          for name in set(earlier) | set(digests)})
    for name, data in files.items():
        _replace(out / name, data)
    for name in set(earlier) - set(files):
        if _own_file(out / name, earlier[name]):
            os.unlink(out / name)
    _write_manifest(out, {name: [value] for name, value in digests.items()})
    return [out / name for name in files]


def escape_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula; numbers are returned unchanged.

    Text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    single quote (OWASP's advice); the writer quotes every text cell.

    >>> escape_cell("=HYPERLINK(1)"), escape_cell(-1.5), escape_cell("gradcam")
    ("'=HYPERLINK(1)", -1.5, 'gradcam')
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header; text cells quoted and escaped, numbers bare (so they stay numbers).

    >>> print(csv_text(["method", "drop"], [{"method": "-x", "drop": -2.0}]), end="")
    "method","drop"
    "'-x",-2.0
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: escape_cell(value) for key, value in row.items()})
    return buffer.getvalue()
