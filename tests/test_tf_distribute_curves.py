"""Deletion, Insertion, MuFidelity and ROAD under MirroredStrategy over 2 logical CPU devices.

Each replica runs a perturbation's K steps (one traced loop) on its share of every batch, the
per-sample extra (MuFidelity's masks, ROAD's noise) travelling with the batch, and the (K, N)
scores come back in the inputs' order. N = 7 in batches of 4 leaves a last batch of 3 (padded to
4, split 2 + 2, the padded row dropped), so the padding is exercised on every metric.

TensorFlow fixes its devices at first use, so the two-replica run happens in a child process (this
file run as a script) that prints its numbers as JSON. Oracles: the single-device numbers of the
same child, and tests/reference.py's NumPy definitions with the model's forward pass written in
NumPy from its known weights.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from reference import reference_auc, reference_curves, reference_mufidelity, reference_road_curves

pytest.importorskip("tensorflow")
pytest.importorskip("scipy")

N, BATCH, CLASSES, SHAPE = 7, 4, 3, (6, 6, 2)
CHILD_TIMEOUT_S = 300
DELETION_STEPS = (5, 8)  # two step counts on one AveragesCam: the parameters are traced, not baked in
INSERTION = {"steps": 6, "baseline": "blur"}
MUFIDELITY = {"grid_size": 3, "n_samples": 24, "subset_fraction": 0.3, "seed": 4}
ROAD = {"fractions": (0.25, 0.5), "noise": 0.05, "seed": 2}


def make_data():
    rng = np.random.default_rng(31)
    inputs = rng.uniform(0, 1, (N, *SHAPE)).astype(np.float32)
    cams = rng.uniform(0, 1, (N, *SHAPE[:2])).astype(np.float32)  # no ties
    targets = rng.integers(0, CLASSES, N)
    kernel = rng.normal(0, 0.4, (int(np.prod(SHAPE)), CLASSES)).astype(np.float32)
    bias = rng.normal(0, 0.1, CLASSES).astype(np.float32)
    return inputs, cams, targets, kernel, bias


def numpy_probabilities(x: np.ndarray) -> np.ndarray:
    _, _, _, kernel, bias = make_data()
    logits = np.asarray(x, np.float64).reshape(len(x), -1) @ kernel.astype(np.float64) + bias
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def child_main() -> None:
    from two_replicas import dense_softmax, mirrored_over_two_cpus

    strategy = mirrored_over_two_cpus()  # before TensorFlow runs anything
    from camavg_core.scoring import CategoricalScore
    from camavg_tf import AveragesCam

    inputs, cams, targets, kernel, bias = make_data()

    def build():
        return dense_softmax(SHAPE, CLASSES, kernel, bias)

    with strategy.scope():
        model = build()
        in_scope = AveragesCam(model, inputs, batch_size=BATCH)  # picks the strategy up
    given = AveragesCam(model, inputs, batch_size=BATCH, strategy=strategy)
    single = AveragesCam(build(), inputs, batch_size=BATCH)
    score = CategoricalScore(targets)

    def traces(cam):
        return sum(passes.trace_count for passes in cam.engine.adapter._passes.values())

    def as_lists(values):
        return [np.asarray(v).tolist() if not np.isscalar(v) else float(v) for v in values]

    report = {"replicas": strategy.num_replicas_in_sync, "found_scope": in_scope.strategy is strategy,
              "given": {}, "single": {}}
    for name, cam in (("given", given), ("single", single)):
        runs = report[name]
        for steps in DELETION_STEPS:
            runs[f"deletion_{steps}"] = as_lists(cam.deletion(cams, score, steps=steps, return_vector=True))
            runs[f"traces_after_deletion_{steps}"] = traces(cam)
        runs["mufidelity"] = as_lists(cam.mufidelity(cams, score, return_vector=True, **MUFIDELITY))
        runs["road"] = as_lists(cam.road(cams, score, return_vector=True, **ROAD))
    report["given"]["insertion"] = as_lists(in_scope.insertion(cams, score, return_vector=True, **INSERTION))
    report["single"]["insertion"] = as_lists(single.insertion(cams, score, return_vector=True, **INSERTION))
    report["passes"] = {name: sorted({type(p).__name__ for p in cam.engine.adapter._passes.values()})
                        for name, cam in (("given", given), ("in_scope", in_scope), ("single", single))}
    print("CHILD-REPORT " + json.dumps(report), flush=True)


pytestmark = pytest.mark.slow  # a child process with two logical devices


@pytest.fixture(scope="module")
def child() -> dict:
    from two_replicas import child_report

    return child_report(__file__, CHILD_TIMEOUT_S)


def sample_score(sample: int, image: np.ndarray) -> float:
    return float(numpy_probabilities(image[None])[0, make_data()[2][sample]])


def test_two_replicas_and_the_scope_is_found(child):
    assert child["replicas"] == 2 and child["found_scope"] is True
    assert child["passes"] == {"given": ["DistributedPasses"], "in_scope": ["DistributedPasses"],
                               "single": ["CompiledPasses"]}


@pytest.mark.parametrize("steps", DELETION_STEPS)
def test_deletion_on_two_replicas_equals_one_device_and_numpy(child, steps):
    inputs, cams, *_ = make_data()
    curves = reference_curves(sample_score, inputs, cams, "deletion", steps=steps)
    aucs = reference_auc(curves)
    for run in ("given", "single"):
        value, terms, got_curves = child[run][f"deletion_{steps}"]
        np.testing.assert_allclose(got_curves, curves, atol=1e-5)
        np.testing.assert_allclose(terms, aucs, atol=1e-5)
        assert value == pytest.approx(aucs.mean(), abs=1e-5)
    np.testing.assert_allclose(child["given"][f"deletion_{steps}"][2], child["single"][f"deletion_{steps}"][2],
                               atol=1e-6)


def test_a_new_step_count_does_not_retrace_on_the_replicas(child):
    first, second = (child["given"][f"traces_after_deletion_{steps}"] for steps in DELETION_STEPS)
    assert first >= 1 and second == first


def test_insertion_in_a_strategy_scope_equals_one_device_and_numpy(child):
    inputs, cams, *_ = make_data()
    curves = reference_curves(sample_score, inputs, cams, "insertion", **INSERTION)
    for run in ("given", "single"):
        value, terms, got_curves = child[run]["insertion"]
        np.testing.assert_allclose(got_curves, curves, atol=1e-5)
        np.testing.assert_allclose(terms, reference_auc(curves), atol=1e-5)
        assert value == pytest.approx(reference_auc(curves).mean(), abs=1e-5)


def test_mufidelity_on_two_replicas_equals_one_device_and_numpy(child):
    inputs, cams, targets, *_ = make_data()
    expected = {}
    for i in range(N):  # one sample at a time: its own masks, drawn from its global index
        def score(batch, target=targets[i]):
            return numpy_probabilities(batch)[:, target]

        one = reference_mufidelity(inputs[i:i + 1], cams[i:i + 1], score, first_index=i, **MUFIDELITY)
        expected.setdefault("terms", []).append(one["terms"][0])
        expected.setdefault("curve", []).append(one["curve"][:, 0])
    for run in ("given", "single"):
        value, terms, curves = child[run]["mufidelity"]
        np.testing.assert_allclose(terms, expected["terms"], atol=1e-4)
        np.testing.assert_allclose(curves, expected["curve"], atol=1e-5)  # (N, n_samples)
        assert value == pytest.approx(np.mean(expected["terms"]), abs=1e-4)
    np.testing.assert_allclose(child["given"]["mufidelity"][2], child["single"]["mufidelity"][2], atol=1e-6)


def test_road_with_noise_on_two_replicas_equals_one_device_and_numpy(child):
    inputs, cams, targets, *_ = make_data()
    fractions, noise, seed = ROAD["fractions"], ROAD["noise"], ROAD["seed"]
    morf_curves, lerf_curves = reference_road_curves(
        inputs, cams, lambda i, image: numpy_probabilities(image[None])[0, targets[i]], fractions, noise, seed)
    curves = {False: morf_curves, True: lerf_curves}
    terms = (curves[True].mean(axis=1) - curves[False].mean(axis=1)) / 2
    for run in ("given", "single"):
        value, got_terms, morf, lerf = child[run]["road"]
        np.testing.assert_allclose(morf, curves[False], atol=1e-4)
        np.testing.assert_allclose(lerf, curves[True], atol=1e-4)
        np.testing.assert_allclose(got_terms, terms, atol=1e-4)
        assert value == pytest.approx(terms.mean(), abs=1e-4)
    for part in (2, 3):
        np.testing.assert_allclose(child["given"]["road"][part], child["single"]["road"][part], atol=1e-6)


if __name__ == "__main__" and "--child" in sys.argv:
    sys.path.insert(0, os.getcwd())
    child_main()
