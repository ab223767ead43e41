"""camavg's own host buffers: aligned, exact copies, and a bitwise comparison that agrees with
comparing the arrays' bytes, for any strides and any chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from camavg_core import buffers

DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool"]


def bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """The oracle: same shape, same dtype, and the same bytes once laid out in C order."""
    return a.shape == b.shape and a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 5), (7, 4, 4), (2, 3, 5, 1), (0, 4)])
def test_aligned_empty_is_aligned_contiguous_and_of_its_shape(shape, dtype):
    for _ in range(5):  # several allocations: alignment must not depend on NumPy's luck
        buffer = buffers.aligned_empty(shape, dtype)
        assert buffer.shape == shape and buffer.dtype == np.dtype(dtype)
        assert buffer.flags.c_contiguous and buffer.flags.writeable
        if buffer.size:  # an empty array has no data to align, and nothing to lend
            assert buffer.ctypes.data % buffers.ALIGNMENT == 0
            assert buffers.is_aligned(buffer)


def test_is_aligned_refuses_strided_and_offset_views():
    buffer = buffers.aligned_empty((8, 16), "float32")
    assert not buffers.is_aligned(buffer[:, ::2])  # not contiguous
    assert not buffers.is_aligned(buffer.reshape(-1)[1:])  # 4 bytes past the alignment


@given(hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=1, max_dims=4, max_side=6)), st.data())
def test_copy_into_is_an_exact_private_aligned_copy(values, data):
    view = values[:: data.draw(st.sampled_from([1, 2]))]  # strided sources too
    reuse = data.draw(st.booleans())
    old = buffers.aligned_empty(view.shape, view.dtype) if reuse else None
    copy = buffers.copy_into(view, old)
    assert bytes_equal(copy, view)
    assert buffers.is_aligned(copy) or copy.size == 0
    assert not np.shares_memory(copy, values)
    if reuse:
        assert copy is old  # the buffer of the right shape and dtype is reused


def test_copy_into_takes_a_new_buffer_when_shape_or_dtype_differ():
    old = buffers.aligned_empty((4, 3), "float32")
    assert buffers.copy_into(np.ones((4, 4), np.float32), old) is not old
    assert buffers.copy_into(np.ones((4, 3), np.float64), old) is not old


def test_copy_into_copies_object_arrays_plainly():
    values = np.array([[1, "a"], [None, 2.5]], dtype=object)
    copy = buffers.copy_into(values)
    assert copy is not values and copy.tolist() == values.tolist()


same_shape_pairs = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.array_shapes(min_dims=1, max_dims=3, max_side=7).flatmap(
        lambda shape: st.tuples(hnp.arrays(dtype, shape), hnp.arrays(dtype, shape))
    )
)


@given(same_shape_pairs, st.integers(1, 64), st.data())
def test_same_bits_agrees_with_comparing_bytes(pair, chunk, data):
    a, b = pair
    if data.draw(st.booleans()):  # often make them equal but for one element
        b = a.copy()
        if b.size and data.draw(st.booleans()):
            flat = b.reshape(-1)
            index = data.draw(st.integers(0, flat.size - 1))
            flat.view(np.uint8)[index * b.dtype.itemsize] ^= 1  # flip one bit
    step = data.draw(st.sampled_from([1, 2]))  # strided views of both
    a, b = a[::step], b[::step]
    original = buffers._CHUNK_BYTES
    buffers._CHUNK_BYTES = chunk  # small chunks: every block boundary gets exercised
    try:
        assert buffers.same_bits(a, b) == bytes_equal(a, b)
    finally:
        buffers._CHUNK_BYTES = original


def test_same_bits_is_bitwise_for_nan_and_signed_zero():
    x = np.array([np.nan, 0.0, 1.0], np.float32)
    assert buffers.same_bits(x, x.copy())  # NaN equals the same NaN (== would say no)
    assert not buffers.same_bits(x, np.array([np.nan, -0.0, 1.0], np.float32))  # == would say yes
    other_nan = x.copy()
    other_nan.view(np.uint32)[0] ^= 1  # another NaN payload: not the same bits
    assert not buffers.same_bits(x, other_nan)
    assert not buffers.same_bits(x, x.astype(np.float64))  # another dtype
    assert not buffers.same_bits(x, x[:2])  # another shape


def test_same_bits_of_long_double_compares_bytes():
    x = np.arange(6, dtype=np.longdouble).reshape(2, 3)
    assert buffers.same_bits(x, x.copy())
    y = x.copy()
    y[1, 2] = 7
    assert not buffers.same_bits(x, y)


# ----------------------------------------------------------------------------- the pool


def test_pool_never_hands_out_a_buffer_in_use():
    pool = buffers.BufferPool()
    held = [pool.take((3, 4), "float32") for _ in range(4)]
    addresses = {buffer.ctypes.data for buffer in held}
    assert len(addresses) == 4  # all in use at once: four buffers
    for buffer in held:
        assert buffer.shape == (3, 4) and buffer.dtype == np.float32 and buffers.is_aligned(buffer)


def test_pool_reuses_an_idle_buffer_of_the_same_kind_and_drops_other_idle_ones():
    pool = buffers.BufferPool()
    kept = pool.take((2, 2), "float64")
    idle_same = pool.take((5, 5), "float32")
    same_address = idle_same.ctypes.data
    other = pool.take((7,), "int8")
    del idle_same, other
    again = pool.take((5, 5), "float32")
    assert again.ctypes.data == same_address  # the idle one of its kind, not a new one
    assert len(pool._buffers) == 2  # the idle int8 buffer was let go; kept and again remain
    assert pool.release() == 0  # both in use
    del again
    assert pool.release() == 5 * 5 * 4
    assert kept.shape == (2, 2)


def test_pool_buffer_seen_through_a_view_is_in_use():
    """A view of a pool buffer refers to the memory underneath, not to the buffer: the pool
    must still see the buffer as in use."""
    pool = buffers.BufferPool()
    buffer = pool.take((4, 4), "float32")
    buffer[:] = 1.0
    view = buffer[1:]
    del buffer
    other = pool.take((4, 4), "float32")
    other[:] = 2.0
    np.testing.assert_array_equal(view, np.ones((3, 4)))  # not overwritten
    del view, other
    assert pool.release() == 2 * 4 * 4 * 4  # both idle now


def test_pool_hands_each_buffer_to_one_thread_at_a_time():
    """Threads taking buffers at once never get the same one while they hold it."""
    from concurrent.futures import ThreadPoolExecutor

    pool = buffers.BufferPool()

    def fill(value: int) -> bool:
        ok = True
        for _ in range(200):
            buffer = pool.take((64,), "int64")
            buffer[:] = value
            ok &= bool((buffer == value).all())  # nobody else wrote into it meanwhile
            del buffer
        return ok

    with ThreadPoolExecutor(4) as executor:
        assert all(executor.map(fill, range(8)))
