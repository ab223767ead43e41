"""Read the command line's ``.npy``/``.npz`` files, refusing anything that is not plain numbers.

Every refusal is a :class:`CommandError` whose message names the argument and the file, says what
was found, and how to fix it. Files are read with ``allow_pickle=False``: an array of Python
objects could run code when unpickled, so it is refused, never loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

INPUT_KEYS = ("inputs", "x", "images")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


class CommandError(ValueError):
    """A bad command line: a missing or unreadable file, mismatched shapes, a bad option."""


def existing_file(path: str, argument: str) -> Path:
    """``path`` as a Path, or CommandError when it is missing or not a file."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise CommandError(f"{argument} {path} is a folder: name a file.")
    if not file.is_file():
        raise CommandError(f"{argument} {path}: no such file; check the path.")
    return file


def _kind(file: Path, argument: str) -> str:
    """'npy' or 'npz', from the file's first bytes (a renamed file is read for what it is)."""
    with open(file, "rb") as handle:
        start = handle.read(len(NPY_MAGIC))
    if start.startswith(NPY_MAGIC):
        return "npy"
    if start.startswith(ZIP_MAGIC):
        return "npz"
    what = "is empty" if not start else f"starts with {start[:6]!r}"
    raise CommandError(
        f"{argument} {file} is not a NumPy .npy or .npz file (it {what}): save the array with "
        f"numpy.save (or numpy.savez for several)."
    )


def _checked_numbers(array: np.ndarray, argument: str, file: Path) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise CommandError(
            f"{argument} {file} holds dtype {array.dtype}, not numbers: save a numeric array, "
            f"e.g. numpy.save(path, array.astype(numpy.float32))."
        )
    return array


def _unreadable(argument: str, file: Path, error: BaseException) -> CommandError:
    if "pickle" in str(error).lower():
        return CommandError(
            f"{argument} {file} holds pickled Python objects, which camavg does not load (they "
            f"can run code): save a numeric array with numpy.save(path, array.astype(numpy.float32))."
        )
    reason = " ".join(str(error).split()) or type(error).__name__
    return CommandError(
        f"{argument} {file} could not be read as a NumPy array ({reason[:160]}); the file may be "
        f"truncated or corrupt: save it again with numpy.save."
    )


def load_array(path: str, argument: str, *, keys: Sequence[str] = INPUT_KEYS) -> np.ndarray:
    """The one array in an ``.npy`` file, or in an ``.npz`` (one array, or one named in ``keys``).

    Args:
        path: the file, as given on the command line.
        argument: the option it came from, for messages (``--inputs``).
        keys: names that pick the array out of an ``.npz`` that holds several.

    Returns:
        A NumPy array of booleans, integers or floats, fully read into memory.

    Raises:
        CommandError: a missing, empty, truncated, corrupt or pickled file, or not numbers.
    """
    file = existing_file(path, argument)
    try:
        kind = _kind(file, argument)
        if kind == "npy":
            array = np.load(file, allow_pickle=False)
        else:
            array = _from_archive(file, argument, keys)
    except CommandError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to parse a user's file
        raise _unreadable(argument, file, error) from None
    return _checked_numbers(np.asarray(array), argument, file)


def _from_archive(file: Path, argument: str, keys: Sequence[str]) -> np.ndarray:
    with np.load(file, allow_pickle=False) as archive:
        names = list(archive.files)
        if len(names) == 1:
            return archive[names[0]]
        for key in keys:
            if key in names:
                return archive[key]
    if not names:
        raise CommandError(f"{argument} {file} is an .npz with no arrays in it: save the array into it.")
    raise CommandError(
        f"{argument} {file} holds arrays {names}: keep one array in the .npz, or name it one of "
        f"{', '.join(keys)}."
    )


def load_inputs(path: str) -> np.ndarray:
    """(N, ...) float32 inputs with N >= 1."""
    inputs = load_array(path, "--inputs")
    if inputs.ndim < 2 or inputs.shape[0] == 0 or inputs.size == 0:
        raise CommandError(
            f"--inputs {path} has shape {inputs.shape}: pass (N, H, W, C) inputs with at least one sample."
        )
    return inputs.astype(np.float32, copy=False)


def load_targets(path: str, n: int) -> np.ndarray:
    """(N,) int64 class indices >= 0; one-hot (N, K) rows are read as their argmax."""
    targets = load_array(path, "--targets", keys=("targets", "y", "labels"))
    if targets.ndim == 2 and targets.shape[0] == n and targets.shape[1] > 1:
        if not (np.isin(targets, (0, 1)).all() and (targets.sum(axis=1) == 1).all()):
            raise CommandError(
                f"--targets {path} has shape {targets.shape} but is not one-hot (one 1 per row): pass "
                f"(N,) class indices, shape ({n},)."
            )
        targets = targets.argmax(axis=1)
    if targets.ndim == 2 and targets.shape[1:] == (1,):
        targets = targets[:, 0]
    if targets.ndim != 1 or targets.shape[0] != n:
        raise CommandError(
            f"--targets {path} has shape {targets.shape} but --inputs has {n} samples: pass one "
            f"target class per input, shape ({n},)."
        )
    if targets.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(targets) | (targets != np.round(targets)))
        if bad.size:
            raise CommandError(
                f"--targets {path} holds {targets[bad[0]].item()} at index {bad[0]}: class indices must be "
                f"whole numbers; save them as integers."
            )
    negative = np.flatnonzero(targets < 0)
    if negative.size:
        raise CommandError(
            f"--targets {path} holds {targets[negative[0]].item()} at index {negative[0]}: class indices "
            f"count from 0; pass indices 0 to K-1 for a model with K outputs."
        )
    if targets.dtype.kind == "f" and targets.size and targets.max() > np.iinfo(np.int64).max:
        raise CommandError(f"--targets {path} holds {targets.max()}: far beyond any class index.")
    return targets.astype(np.int64)


def check_targets_in_range(targets: np.ndarray, n_units: int, path: str) -> None:
    """CommandError naming the first target the model has no class for (0/1 for one unit)."""
    n_classes = 2 if n_units == 1 else n_units
    bad = np.flatnonzero(targets >= n_classes)
    if bad.size:
        allowed = "0 or 1 (the model has one sigmoid unit)" if n_units == 1 else f"0 to {n_classes - 1}"
        raise CommandError(
            f"--targets {path} holds class {targets[bad[0]].item()} at index {bad[0]} but the model has "
            f"{n_units} output unit{'s' if n_units != 1 else ''}: pass class indices {allowed}."
        )


def cam_shape_problem(shape: tuple, n: int) -> str | None:
    """What is wrong with a CAM array of ``shape`` for ``n`` inputs, or None if nothing is.

    >>> cam_shape_problem((200, 64, 64, 3), 200)
    'the CAMs have a channel axis (shape (200, 64, 64, 3)): pass one map per image, (N, H, W); average the channels or take one'
    >>> cam_shape_problem((5, 8, 8), 6)
    'it holds 5 maps (shape (5, 8, 8)) but --inputs has 6 samples: pass one map per input, shape (6, H, W)'
    """
    if len(shape) == 4 and shape[0] == n and shape[1] == 1:
        return (f"the CAMs have a channel axis first (shape {shape}): squeeze it, e.g. cams[:, 0], "
                f"to pass (N, H, W)")
    if len(shape) == 4 and shape[0] == n:
        return (f"the CAMs have a channel axis (shape {shape}): pass one map per image, (N, H, W); "
                f"average the channels or take one")
    if len(shape) == 2:
        return f"it is a single (H, W) map (shape {shape}): pass one map per input, (N, H, W) with N = {n}"
    if len(shape) != 3:
        return f"expected (N, H, W), got rank {len(shape)} (shape {shape})"
    if shape[0] != n:
        return f"it holds {shape[0]} maps (shape {shape}) but --inputs has {n} samples: pass one map per input, shape ({n}, H, W)"
    if shape[1] == 0 or shape[2] == 0:
        return f"its maps are empty (shape {shape}): pass (N, H, W) maps with H, W >= 1"
    return None


def load_cams(paths: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """``{file stem: (N, h, w) float32 CAMs}``; (N, h, w, 1) is squeezed."""
    cams: dict[str, np.ndarray] = {}
    for path in paths:
        array = load_array(path, "--cams", keys=("cams",))
        if array.ndim == 4 and array.shape[-1] == 1 and array.shape[0] == n:
            array = array[..., 0]
        problem = cam_shape_problem(array.shape, n)
        if problem:
            raise CommandError(f"--cams {path}: {problem}.")
        name = Path(path).stem
        if name in cams:
            raise CommandError(
                f"--cams has two files named {name!r}: the method name is the file's stem; rename one."
            )
        cams[name] = array.astype(np.float32, copy=False)
    return cams
