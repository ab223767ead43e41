"""Host buffers that camavg owns: the masked-pass cache's copy of the CAMs and the private copy
of the inputs, allocated so that a framework can read them without a second copy.

A framework tensor made from a NumPy array is normally a copy, into memory the framework
allocates afresh for every call. At 224 px a CAM set is 51 MB and an image set 154 MB, and
first-touching that much fresh memory costs a noticeable share of a forward pass on a small
machine. camavg copies the caller's arrays once, into buffers it reuses (NumPy asks the kernel
for huge pages for large arrays), and lends them to the framework (``camavg_tf`` by DLPack):
one copy instead of two, into warm memory.

A buffer is aligned to :data:`ALIGNMENT` bytes, which covers what TensorFlow's kernels (Eigen,
64 bytes at most) and XLA require of a borrowed buffer.

>>> buffer = aligned_empty((3, 5), "float32")
>>> buffer.shape, buffer.dtype.name, is_aligned(buffer), buffer.flags.owndata
((3, 5), 'float32', True, False)
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

#: Byte alignment of every buffer from :func:`aligned_empty`.
ALIGNMENT = 128


def aligned_empty(shape: tuple, dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts at a multiple of
    :data:`ALIGNMENT` bytes (NumPy itself guarantees only 16). An empty array has no data to
    align."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def is_aligned(array: np.ndarray) -> bool:
    """Whether a framework may borrow ``array``'s memory: C-contiguous and aligned."""
    return bool(array.flags.c_contiguous and array.ctypes.data % ALIGNMENT == 0)


def copy_into(values: np.ndarray, buffer: np.ndarray | None = None) -> np.ndarray:
    """``values`` copied into ``buffer`` when it has their shape and dtype, else into a new
    aligned buffer: the copy is C-contiguous and aligned whatever the strides of ``values``.
    Arrays of Python objects (which no framework borrows) get a plain copy."""
    if values.dtype.hasobject:
        return np.array(values, copy=True)
    if buffer is None or buffer.shape != values.shape or buffer.dtype != values.dtype:
        buffer = aligned_empty(values.shape, values.dtype)
    np.copyto(buffer, values)
    return buffer


class BufferPool:
    """Aligned buffers handed out for private copies that come and go, such as the inputs of an
    ``AveragesCam`` built for each chunk of a data set: a buffer nobody uses any more is handed
    to the next request of its shape and dtype, so the copy writes into warm memory instead of
    faulting in fresh pages (on a 2-core VM, 15 ms against up to 200 ms for 154 MB).

    A buffer is idle when the pool holds the only reference to it; a framework tensor that
    borrows it (DLPack) holds one until the tensor is gone, so a buffer in use is never handed
    out twice. The pool keeps at most one idle buffer: a request drops the idle ones it does
    not reuse, and :meth:`release` drops them all.

    >>> pool = BufferPool()
    >>> first = pool.take((2, 3), "float32")
    >>> second = pool.take((2, 3), "float32")  # the first is still referenced: a new buffer
    >>> second is first
    False
    >>> address = second.ctypes.data
    >>> del second
    >>> pool.take((2, 3), "float32").ctypes.data == address  # idle: reused
    True
    """

    def __init__(self) -> None:
        self._buffers: list[np.ndarray] = []
        self._lock = threading.Lock()  # two threads must not both find one buffer idle

    def _idle(self, index: int) -> bool:
        buffer = self._buffers[index]
        # references to the buffer: the pool's list, ``buffer`` here and getrefcount's argument;
        # to the memory it views (``aligned_empty``): the buffer and the argument. Any view of
        # the buffer refers to that memory, not to the buffer, so both are counted.
        return sys.getrefcount(buffer) <= 3 and (buffer.base is None or sys.getrefcount(buffer.base) <= 2)

    def take(self, shape: tuple, dtype: Any) -> np.ndarray:
        """An aligned buffer of this shape and dtype: an idle one of the pool, else a new one."""
        dtype = np.dtype(dtype)
        with self._lock:
            found = None
            for index in reversed(range(len(self._buffers))):
                if not self._idle(index):
                    continue
                candidate = self._buffers[index]
                if found is None and candidate.shape == tuple(shape) and candidate.dtype == dtype:
                    found = candidate
                else:
                    del self._buffers[index]  # idle and not wanted: let it go
            if found is None:
                found = aligned_empty(shape, dtype)
                self._buffers.append(found)
            return found

    def release(self) -> int:
        """Drop every idle buffer; returns the bytes let go."""
        freed = 0
        with self._lock:
            for index in reversed(range(len(self._buffers))):
                if self._idle(index):
                    freed += self._buffers[index].nbytes
                    del self._buffers[index]
        return freed


#: The pool of the private copies of ``AveragesCam`` inputs.
INPUT_POOL = BufferPool()


def _word(itemsize: int) -> np.dtype | None:
    """The unsigned integer of ``itemsize`` bytes, to compare values bit for bit."""
    return {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32), 8: np.dtype(np.uint64)}.get(itemsize)


#: Bytes compared at a time by :func:`same_bits`: small enough that its temporaries come from
#: warm memory, large enough that the loop costs nothing.
_CHUNK_BYTES = 1 << 22


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` hold the same bits (so NaN equals the same NaN, and -0.0 is not
    0.0): the test of an unchanged CAM set. Any strides; no copy of either array; it stops at
    the first block that differs.

    >>> x = np.array([1.0, np.nan, -0.0])
    >>> same_bits(x, x.copy()), same_bits(x, np.array([1.0, np.nan, 0.0]))
    (True, False)
    >>> same_bits(x[::2], np.array([1.0, -0.0]))
    True
    """
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    word = _word(a.dtype.itemsize)
    if word is None:  # no integer of that width (e.g. long double): compare the raw bytes
        return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    if a.ndim == 0:
        return bool(a.view(word) == b.view(word))
    a_words, b_words = a.view(word), b.view(word)
    row_bytes = max(1, a.nbytes // max(1, a.shape[0]))
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, a.shape[0], step):
        if not np.array_equal(a_words[start : start + step], b_words[start : start + step]):
            return False
    return True
