"""The ``--out`` folder: checked before any work, written whole, never mixed with an older run.

A run writes every file into a fresh temporary folder beside ``--out`` and then swaps it into
place, so the folder holds exactly this run's files (no ``comparisons.json`` left from an earlier
run with ``--compare``), and an interrupted run leaves the earlier folder as it was. CSV cells
that a spreadsheet would read as a formula are escaped as OWASP recommends for CSV injection.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from camavg_tf.app.loading import CommandError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What a run writes. An existing --out folder is replaced only when it holds nothing else, so
# `--out .` or a typo can never delete a user's own files.
OUTPUT_FILES = frozenset({"results.json", "results.csv", "comparisons.json", "comparisons.csv", "conclusion.txt", "report.png"})


def check_out(path: str) -> Path:
    """``--out`` as a Path whose parent exists (made if needed) and is writable.

    Raises:
        CommandError: ``--out`` names a file, or its parent cannot be made or written.
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {path} is a file: name a folder (camavg writes results.json and more into it).")
    if out.is_dir():
        foreign = sorted(entry.name for entry in out.iterdir() if entry.name not in OUTPUT_FILES)
        if foreign:
            raise CommandError(
                f"--out {path} holds files camavg did not write ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}), and camavg replaces the folder: name a new or "
                f"empty folder, or the folder of an earlier camavg run."
            )
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=parent)
        os.rmdir(probe)
    except OSError as error:
        raise CommandError(
            f"--out {path}: cannot write in {parent} ({error.strerror or error}): choose a folder you can write to."
        ) from None
    return out


@contextlib.contextmanager
def fresh_folder(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``out`` with everything in it.

    On an exception the temporary folder is removed and ``out`` is left as it was.
    """
    parent = out.absolute().parent
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o777 & ~_umask())
    old = None
    if out.is_dir():
        # Move the old folder aside first: rename cannot replace a non-empty folder.
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
        os.rmdir(old)
        os.rename(out, old)
    try:
        os.rename(staging, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
