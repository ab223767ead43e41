"""What every adapter does the same way around its compiled pass: the structure of ``inputs``
and ``cams`` (one array, or a list with one array per model input), the batch plan, and the
CAM value checks made from per-sample reductions computed on the device.

Framework-free: the adapters (``camavg_tf``, ``camavg_jax``) move the arrays; this module only
decides shapes, counts and messages.

>>> plan = batch_plan(10, 4)
>>> plan.batch_size, plan.n_batches, plan.padding
(4, 3, 2)
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: Samples per forward pass when the user gives none (Keras' ``predict`` default).
DEFAULT_BATCH_SIZE = 32


def as_list(value: Any) -> list:
    """A list of model inputs, outputs or CAM arrays: one array becomes a list of one."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def input_name(index: int, multi_input: bool) -> str:
    """How a message names one model input: ``inputs`` or ``inputs[i]``."""
    return f"inputs[{index}]" if multi_input else "inputs"


def check_same_count(counts: list[int]) -> None:
    """Every model input holds the same number of samples."""
    if len(set(counts)) > 1:
        raise ValueError(
            f"inputs hold different numbers of samples {sorted(set(counts))}: each model input "
            f"needs the same N."
        )


def cams_per_input(cams: Any, n_inputs: int, multi_input: bool) -> list:
    """The CAM arrays as a list with one per model input, or a clear error.

    A single-input model takes one CAM array; a multi-input model a list with one CAM array
    per input, as tf-keras-vis returns them.

    >>> cams_per_input([1, 2], 2, True)
    [1, 2]
    """
    if multi_input != isinstance(cams, (list, tuple)):
        if multi_input:
            raise ValueError(
                f"The model has {n_inputs} inputs, so cams must be a list with one CAM array "
                f"per input (as tf-keras-vis returns them), got a single array."
            )
        raise ValueError(
            "cams is a list but the model has a single input: pass one array of shape "
            "(N, H, W) (a multi-input model takes a list with one CAM array per input)."
        )
    cam_list = as_list(cams)
    if len(cam_list) != n_inputs:
        raise ValueError(
            f"cams holds {len(cam_list)} CAM arrays for a model with {n_inputs} inputs: pass "
            f"one per input."
        )
    for cam in cam_list:
        if isinstance(cam, (str, bytes)) or cam is None:
            raise TypeError(f"cams must be arrays of shape (N, H, W), got {type(cam).__name__}.")
    return cam_list


class BatchPlan(NamedTuple):
    """How N samples split into equal batches, the last one padded.

    Every batch has ``batch_size`` rows, so a compiled pass sees one shape whatever N is; the
    ``padding`` rows of the last batch are dropped from the outputs.
    """

    n: int
    batch_size: int
    n_batches: int

    @property
    def padding(self) -> int:
        return self.n_batches * self.batch_size - self.n

    def bounds(self, index: int) -> tuple[int, int]:
        """``(start, stop)`` of the real rows of batch ``index``."""
        start = index * self.batch_size
        return start, min(start + self.batch_size, self.n)


def batch_plan(n: int, batch_size: int | None, multiple_of: int = 1) -> BatchPlan:
    """The batches for ``n`` samples: ``batch_size`` rows each (default 32), never more rows
    than ``n`` needs, and a multiple of ``multiple_of`` (the devices a batch is split over).

    >>> batch_plan(5, None)  # a batch larger than N shrinks to N
    BatchPlan(n=5, batch_size=5, n_batches=1)
    >>> batch_plan(10, 6, multiple_of=4)  # rounded up to 8 for 4 devices
    BatchPlan(n=10, batch_size=8, n_batches=2)
    """
    if n < 1:
        raise ValueError("inputs is empty: there is no sample to evaluate.")
    if multiple_of < 1:
        raise ValueError(f"multiple_of must be a positive integer, got {multiple_of!r}.")
    size = min(int(batch_size or DEFAULT_BATCH_SIZE), n)
    size = -(-size // multiple_of) * multiple_of
    return BatchPlan(n=n, batch_size=size, n_batches=-(-n // size))
