"""ROAD's paired solve (camavg_core.imputation.impute_pair, Road.groups and Road.apply_group):
two disjoint masks imputed in one field, each against scipy's spsolve of its own system
(tests/reference.py), on every backend, and the pairing of MoRF and LeRF steps against counts
worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from camavg_core.backends import resolve_backend
from camavg_core.imputation import Road, impute, impute_pair
from reference import reference_road_impute, reference_road_removed

NUMPY = resolve_backend("numpy")


def _smooth_cam(rng, h, w):
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.1 * h * w))


def _framework(name):
    if name == "tensorflow":
        tf = pytest.importorskip("tensorflow")
        return resolve_backend("tensorflow"), tf.constant, lambda t: t.numpy()
    if name == "jax":
        jnp = pytest.importorskip("jax.numpy")
        return resolve_backend("jax"), jnp.asarray, np.asarray
    if name == "torch":
        torch = pytest.importorskip("torch")
        return resolve_backend("torch"), lambda a: torch.from_numpy(np.ascontiguousarray(a)), lambda t: t.numpy()
    return NUMPY, lambda a: a, np.asarray


def _morf_lerf(rng, h, w, n, fraction):
    """Per image, MoRF at ``fraction`` and LeRF at 1 - ``fraction`` of a smooth CAM: disjoint."""
    cams = [_smooth_cam(rng, h, w) for _ in range(n)]
    first = np.stack([reference_road_removed(c, fraction, False) for c in cams])
    second = np.stack([reference_road_removed(c, 1.0 - fraction, True) for c in cams])
    assert not (first & second).any()
    return first, second


def _expected(x, masks):
    return [np.stack([reference_road_impute(x[i], m[i]) for i in range(len(x))]) for m in masks]


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.8])
def test_each_system_of_a_pair_agrees_with_its_own_spsolve(fraction):
    """At 0.5 the two masks cover every pixel: the union knows nothing, each system still
    knows the other's pixels (a solver that asked the union whether a pixel is known would
    leave both at the start)."""
    rng = np.random.default_rng(int(fraction * 10))
    first, second = _morf_lerf(rng, 20, 17, 3, fraction)  # P = 340: 0.5 and 0.5 cover it
    x = rng.random((3, 20, 17, 3))
    out = impute_pair(NUMPY, x, first[..., None].astype(float), second[..., None].astype(float))
    for got, want in zip(out, _expected(x, (first, second))):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        assert np.abs(got - x).max() > 1e-2  # something was imputed
    if fraction == 0.5:
        assert (first | second).all()


def test_scattered_disjoint_masks_agree_with_spsolve():
    """Masks that interleave pixel by pixel: every stencil crosses between the systems."""
    rng = np.random.default_rng(5)
    x = rng.random((2, 15, 19, 2))
    draw = rng.random((2, 15, 19))
    first, second = draw < 0.4, draw > 0.55
    out = impute_pair(NUMPY, x, first[..., None] * 1.0, second[..., None] * 1.0)
    for got, want in zip(out, _expected(x, (first, second))):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_a_pair_costs_about_one_solve_not_two():
    """The V-cycle stays a preconditioner of the paired operator: the pair takes about the
    iterations of its harder system (a preconditioner built for the union's coupled operator
    takes several times more)."""
    rng = np.random.default_rng(9)
    first, second = _morf_lerf(rng, 48, 40, 2, 0.3)
    x = rng.random((2, 48, 40, 3))
    *_, pair = impute_pair(NUMPY, x, first[..., None] * 1.0, second[..., None] * 1.0, return_iterations=True)
    alone = [int(impute(NUMPY, x, m[..., None] * 1.0, return_iterations=True)[1]) for m in (first, second)]
    assert int(pair) <= max(alone) + 3


def test_an_empty_mask_beside_a_full_one():
    """Nothing removed: the input; everything removed: each channel's mean of the input."""
    rng = np.random.default_rng(6)
    x = rng.random((2, 6, 7, 3)) + 1.0
    empty, full = np.zeros((2, 6, 7, 1)), np.ones((2, 6, 7, 1))
    kept, spread = impute_pair(NUMPY, x, empty, full)
    np.testing.assert_allclose(kept, x, atol=0)
    np.testing.assert_allclose(spread, np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape), atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["tensorflow", "jax", "torch"])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("preconditioner", ["multigrid", "jacobi"])
def test_each_backend_solves_a_pair_in_float32(framework, channels_last, preconditioner):
    """TensorFlow channels last runs its XLA solver (camavg_tf.imputation), the rest the
    core's; an odd size, so the V-cycle pads its levels."""
    backend, to, back = _framework(framework)
    rng = np.random.default_rng(13)
    first, second = _morf_lerf(rng, 37, 23, 3, 0.4)
    x = rng.random((3, 37, 23, 3)).astype(np.float32)
    masks = [m[..., None].astype(np.float32) for m in (first, second)]
    if not channels_last:
        x_in, masks = np.moveaxis(x, -1, 1), [np.moveaxis(m, -1, 1) for m in masks]
    else:
        x_in = x
    out = impute_pair(backend, to(x_in), *(to(m) for m in masks), preconditioner=preconditioner)
    for got, want in zip(out, _expected(x, (first, second))):
        got = back(got)
        if not channels_last:
            got = np.moveaxis(got, 1, -1)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_default_fractions_pair_morf_at_f_with_lerf_at_one_minus_f():
    road = Road()
    rows = road.parameters(96 * 96)
    groups = road.groups(rows)
    # steps 0-8: MoRF at 0.1 .. 0.9; 9-17: LeRF at 0.1 .. 0.9
    assert groups.tolist() == [[k, 17 - k] for k in range(9)]
    counts = [int(np.floor(f * 9216 + 1e-9)) for f in road.fractions]
    assert all(counts[k] + counts[8 - k] <= 9216 for k in range(9))


@pytest.mark.parametrize("fractions, pairs", [
    ((0.2, 0.5, 0.7), [[0, 5], [1, 4], [2, 3]]),   # 0.2 + 0.7, 0.5 + 0.5, 0.7 + 0.2
    ((0.3,), [[0, 1]]),
    ((0.6, 0.7), None),                            # any MoRF with any LeRF removes over P
    ((0.5, 0.51), None),                           # 0.5 pairs with 0.5, but then 0.51 with 0.51
])
def test_steps_pair_only_when_every_morf_step_finds_a_disjoint_lerf_step(fractions, pairs):
    road = Road(fractions=fractions)
    groups = road.groups(road.parameters(100))
    assert (groups is None) if pairs is None else (groups.tolist() == pairs)


def test_percentile_selection_never_pairs():
    """Its ties can remove more than floor(f P) pixels, so MoRF and LeRF can overlap."""
    road = Road(selection="percentile")
    assert road.groups(road.parameters(100)) is None


@pytest.mark.parametrize("framework", ["numpy", "tensorflow"])
def test_apply_group_gives_each_step_its_imputation_and_noise(framework):
    """A group's two batches against spsolve of each step's mask plus the sample's noise at its
    removed pixels (the noise drawn as Road.per_sample documents)."""
    backend, to, back = _framework(framework)
    rng = np.random.default_rng(17)
    x = rng.random((3, 16, 12, 3)).astype(np.float32)
    cams = np.stack([_smooth_cam(rng, 16, 12) for _ in range(3)])[..., None].astype(np.float32)
    road = Road(fractions=(0.25, 0.75), noise=0.05, seed=4)
    noise = road.per_sample(np.arange(3), x.shape)
    prepared = road.prepare(backend, to(x), to(cams), to(noise))
    rows = road.parameters(16 * 12)
    for group in road.groups(rows):
        outs = road.apply_group(backend, to(x), prepared, to(rows[group]))
        for step, got in zip(group, outs):
            lerf, fraction = step >= 2, road.fractions[step % 2]
            for i in range(3):
                removed = reference_road_removed(cams[i, ..., 0], fraction, lerf)
                want = reference_road_impute(x[i], removed) + np.where(removed[..., None], noise[i], 0.0)
                np.testing.assert_allclose(back(got)[i], want, atol=1e-4, rtol=0)
