"""Steps computed together: a perturbation's ``groups`` and ``apply_group``.

A toy removal perturbation pairs its K = 4 steps in a shuffled order ([[3, 0], [1, 2]]); its
``apply_group`` either returns its rows' ``apply`` or scales the batch of the group's place s by
s + 1, which only a pass that really calls it, and puts each output at its step, reproduces.
Oracles: the model's softmax written in NumPy from its known weights on inputs perturbed by hand
(NumPy ranks), and the same perturbation run one step at a time, on TensorFlow (one device and
two replicas), JAX and PyTorch. The two-replica run happens in
a child process (this file run as a script), as in tests/test_tf_distribute_curves.py.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from camavg_core.backends import resolve_backend
from camavg_core.perturbations import apply_group, salience_ranks, step_groups

N, SIZE, CLASSES = 7, 5, 3
CHANNELS = (2, 1)  # the two inputs of the multi-input model
FRACTIONS = (0.2, 0.4, 0.6, 0.8)
PAIRS = [[3, 0], [1, 2]]
CHILD_TIMEOUT_S = 300


class PairedRemoval:
    """Step k zeroes the ``fractions[k]`` most salient pixels; ``pairs`` are its groups (None:
    no ``groups``); ``scaled``: ``apply_group`` multiplies the batch at place s by s + 1."""

    def __init__(self, fractions=FRACTIONS, pairs=PAIRS, scaled=False):
        self.fractions, self.pairs, self.scaled = tuple(fractions), pairs, scaled
        self.steps = len(self.fractions)
        self.key = ("paired_removal", pairs is not None, scaled)
        self.group_sizes = []  # S of every apply_group call (traced: once per trace and input)

    def parameters(self, n_pixels):
        return np.array([[round(f * n_pixels)] for f in self.fractions], np.float32)

    def groups(self, parameters):
        return self.pairs  # as given, bad or not: step_groups checks it

    def prepare(self, backend, x, cams):
        return salience_ranks(backend, cams)

    def apply(self, backend, x, ranks, parameter):
        return x * backend.astype(ranks >= parameter[0], backend.dtype_name(x))

    def apply_group(self, backend, x, ranks, rows):
        size = backend.shape(rows)[0]
        self.group_sizes.append(size)
        return [self.apply(backend, x, ranks, rows[s]) * (s + 1.0 if self.scaled else 1.0) for s in range(size)]

    def __repr__(self):
        return f"PairedRemoval(pairs={self.pairs})"


# --------------------------------------------------------------------------- the NumPy reference
def make_data(multi_input):
    rng = np.random.default_rng(8)
    channels = CHANNELS if multi_input else CHANNELS[:1]
    inputs = [rng.random((N, SIZE, SIZE, c)).astype(np.float32) for c in channels]
    cams = [rng.random((N, SIZE, SIZE)).astype(np.float32) for _ in channels]  # no ties
    kernel = rng.normal(0, 0.5, (SIZE * SIZE * sum(channels), CLASSES)).astype(np.float32)
    bias = rng.normal(0, 0.1, CLASSES).astype(np.float32)
    labels = rng.integers(0, CLASSES, N)
    return inputs, cams, kernel, bias, labels


def numpy_ranks(cams):
    flat = cams.reshape(len(cams), -1)
    ranks = np.empty_like(flat, dtype=np.int64)
    np.put_along_axis(ranks, np.argsort(-flat, axis=1, kind="stable"), np.arange(flat.shape[1])[None], axis=1)
    return ranks.reshape(cams.shape)


def expected_scores(multi_input, scaled):
    """(K, N): the label's softmax probability on each step's inputs, perturbed by hand."""
    inputs, cams, kernel, bias, labels = make_data(multi_input)
    place = {step: s for group in PAIRS for s, step in enumerate(group)}
    rows = []
    for step, fraction in enumerate(FRACTIONS):
        count = round(fraction * SIZE * SIZE)
        factor = place[step] + 1.0 if scaled else 1.0
        perturbed = [x * (numpy_ranks(c) >= count)[..., None] * factor for x, c in zip(inputs, cams)]
        logits = np.concatenate([x.reshape(N, -1) for x in perturbed], axis=1).astype(np.float64) @ kernel + bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        rows.append((e / e.sum(axis=1, keepdims=True))[np.arange(N), labels])
    return np.stack(rows)


# --------------------------------------------------------------------------- the TF runs
def dense_model(multi_input, kernel, bias):
    import keras

    inputs = [keras.Input((SIZE, SIZE, c)) for c in (CHANNELS if multi_input else CHANNELS[:1])]
    flat = [keras.layers.Flatten()(x) for x in inputs]
    dense = keras.layers.Dense(CLASSES, activation="softmax")
    model = keras.Model(inputs if multi_input else inputs[0], dense(keras.layers.Concatenate()(flat) if multi_input else flat[0]))
    dense.set_weights([kernel, bias])
    return model


def tf_metrics(multi_input, batch_size, strategy=None):
    from camavg_tf import AveragesCam

    inputs, _, kernel, bias, _ = make_data(multi_input)
    return AveragesCam(dense_model(multi_input, kernel, bias), inputs if multi_input else inputs[0],
                       batch_size=batch_size, strategy=strategy)


def step_scores(metrics, multi_input, perturbation):
    """(K, N) scores of ``perturbation``'s steps, through the engine's compiled pass."""
    from camavg_core.scoring import CategoricalScore, as_score_list

    _, cams, _, _, labels = make_data(multi_input)
    engine = metrics.engine
    cam_set = engine.own_cams(cams if multi_input else cams[0], False)
    functions = as_score_list(CategoricalScore(labels), 1)
    return engine.step_scores(functions, engine.perturbed_outputs(cam_set, perturbation))


def traces(metrics):
    return sum(passes.trace_count for passes in metrics.engine.adapter._passes.values())


def run_all(strategy=None):
    """Per model kind and batch size: the scores ungrouped, grouped, grouped and scaled, the
    S of apply_group's calls, and the traces of two more grouped calls with other values."""
    report = {}
    for multi_input in (False, True):
        for batch_size in (2, 4):  # neither divides N = 7
            metrics = tf_metrics(multi_input, batch_size, strategy)
            grouped, scaled = PairedRemoval(), PairedRemoval(scaled=True)
            run = {"ungrouped": step_scores(metrics, multi_input, PairedRemoval(pairs=None)).tolist()}
            before = traces(metrics)
            run["grouped"] = step_scores(metrics, multi_input, grouped).tolist()
            run["first_traces"] = traces(metrics) - before
            run["scaled"] = step_scores(metrics, multi_input, scaled).tolist()
            run["group_sizes"] = grouped.group_sizes + scaled.group_sizes
            run["passes"] = sorted({type(p).__name__ for p in metrics.engine.adapter._passes.values()})
            before = traces(metrics)
            # same key and S, other values, and then more groups: the trace serves them all
            step_scores(metrics, multi_input, PairedRemoval(fractions=(0.1, 0.3, 0.5, 0.7)))
            step_scores(metrics, multi_input, PairedRemoval(fractions=(0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
                                                            pairs=[[5, 2], [0, 4], [1, 3]]))
            run["new_traces"] = traces(metrics) - before
            report[f"{'multi' if multi_input else 'single'}_{batch_size}"] = run
    return report


def child_main():
    from two_replicas import mirrored_over_two_cpus

    strategy = mirrored_over_two_cpus()  # before TensorFlow runs anything
    report = {"replicas": strategy.num_replicas_in_sync, "runs": run_all(strategy)}
    print("CHILD-REPORT " + json.dumps(report), flush=True)


# --------------------------------------------------------------------------- the checks
def check_runs(runs, passes):
    for name, run in runs.items():
        multi_input = name.startswith("multi")
        expected = expected_scores(multi_input, scaled=False)
        np.testing.assert_allclose(run["ungrouped"], expected, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(run["grouped"], expected, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(run["scaled"], expected_scores(multi_input, scaled=True), atol=1e-5, err_msg=name)
        assert set(run["group_sizes"]) == {2}, name  # apply_group ran, on pairs
        assert run["passes"] == [passes], name
        # one trace per key and S: other values, and more groups of the same S, trace nothing
        assert run["first_traces"] == 1 and run["new_traces"] == 0, name


def test_the_scaled_reference_differs_from_the_plain_one():
    # else the scaled run would prove nothing about apply_group or the places: steps 0 and 2,
    # second in their pairs, are scaled by 2
    for multi_input in (False, True):
        assert np.abs(expected_scores(multi_input, True) - expected_scores(multi_input, False))[[0, 2]].min() > 1e-3


def test_grouped_steps_on_one_device_equal_numpy_and_the_ungrouped_steps():
    pytest.importorskip("keras")
    check_runs(run_all(), "CompiledPasses")


@pytest.mark.slow  # a child process with two logical devices
def test_grouped_steps_on_two_replicas_equal_numpy():
    pytest.importorskip("tensorflow")
    from two_replicas import child_report

    report = child_report(__file__, CHILD_TIMEOUT_S)
    assert report["replicas"] == 2
    check_runs(report["runs"], "DistributedPasses")


# --------------------------------------------------------------------------- JAX and PyTorch
def jax_metrics(multi_input, batch_size):
    jax = pytest.importorskip("jax")
    from camavg_jax import AveragesCam

    inputs, _, kernel, bias, _ = make_data(multi_input)

    def model(x):
        flat = jax.numpy.concatenate([part.reshape(part.shape[0], -1) for part in (x if multi_input else [x])], axis=1)
        return jax.nn.softmax(flat @ kernel + bias)

    return AveragesCam(model, inputs if multi_input else inputs[0], batch_size=batch_size)


def torch_metrics(multi_input, batch_size):
    torch = pytest.importorskip("torch")
    from camavg_torch import AveragesCam

    inputs, _, kernel, bias, _ = make_data(multi_input)
    w, b = torch.from_numpy(kernel), torch.from_numpy(bias)

    def model(*x):  # channels first, flattened in the reference's (H, W, C) order
        return torch.softmax(torch.cat([part.permute(0, 2, 3, 1).reshape(len(part), -1) for part in x], dim=1) @ w + b, dim=-1)

    first = [np.ascontiguousarray(x.transpose(0, 3, 1, 2)) for x in inputs]
    return AveragesCam(model, first if multi_input else first[0], batch_size=batch_size)


@pytest.mark.parametrize("metrics_of", [jax_metrics, torch_metrics], ids=["jax", "torch"])
@pytest.mark.parametrize("multi_input", [False, True], ids=["single", "multi"])
def test_grouped_steps_on_jax_and_torch_equal_numpy(metrics_of, multi_input):
    for batch_size in (2, 4):
        metrics = metrics_of(multi_input, batch_size)
        expected = expected_scores(multi_input, scaled=False)
        grouped, scaled = PairedRemoval(), PairedRemoval(scaled=True)
        np.testing.assert_allclose(step_scores(metrics, multi_input, PairedRemoval(pairs=None)), expected, atol=1e-5)
        np.testing.assert_allclose(step_scores(metrics, multi_input, grouped), expected, atol=1e-5)
        np.testing.assert_allclose(step_scores(metrics, multi_input, scaled), expected_scores(multi_input, scaled=True),
                                   atol=1e-5)
        assert grouped.group_sizes and set(grouped.group_sizes + scaled.group_sizes) == {2}


def test_jax_traces_a_group_size_once():
    metrics = jax_metrics(False, 3)
    before = metrics.trace_count
    step_scores(metrics, False, PairedRemoval())
    assert metrics.trace_count - before == 2  # the first group (with prepare) and the later ones
    step_scores(metrics, False, PairedRemoval(fractions=(0.1, 0.3, 0.5, 0.7, 0.9, 1.0), pairs=[[5, 2], [0, 4], [1, 3]]))
    assert metrics.trace_count - before == 2


# --------------------------------------------------------------------------- the core functions
@pytest.mark.parametrize("groups, problem", [
    ([[3, 0], [1, 1]], "a step twice, one missing"),
    ([[3, 0], [1]], "ragged"),
    ([[3, 0, 1]], "a step missing"),
    ([3, 0, 1, 2], "1-D"),
    ([[3.0, 0.0], [1.0, 2.0]], "floats"),
    ([[3, 0], [1, 4]], "a step out of range"),
    (np.zeros((0, 4), np.int64), "no group"),
])
def test_bad_groups_are_refused_with_what_they_must_be(groups, problem):
    perturbation = PairedRemoval(pairs=groups)
    with pytest.raises(ValueError, match=r"PairedRemoval.*groups\(\) returned .*: it must return a \(G, S\) "
                                         r"integer array of step indices holding each of 0\.\.3 exactly once"):
        step_groups(perturbation, np.zeros((4, 1), np.float32))


def test_step_groups_defaults_to_one_step_per_group():
    assert step_groups(PairedRemoval(pairs=None), np.zeros((3, 1), np.float32)).tolist() == [[0], [1], [2]]

    class NoGroups:
        pass

    assert step_groups(NoGroups(), np.zeros((2, 1), np.float32)).tolist() == [[0], [1]]
    assert step_groups(PairedRemoval(), np.zeros((4, 1), np.float32)).dtype == np.int64


def test_apply_group_calls_apply_per_row_when_s_is_one_or_there_is_no_apply_group():
    bk = resolve_backend("numpy")
    x, ranks = np.ones((1, 2, 2, 1)), np.array([[[2.0, 0.0], [3.0, 1.0]]])[..., None]
    scaled = PairedRemoval(scaled=True)
    one = apply_group(scaled, bk, x, ranks, np.array([[1.0]]))
    assert [b[0, ..., 0].tolist() for b in one] == [[[1.0, 0.0], [1.0, 1.0]]] and scaled.group_sizes == []
    two = apply_group(scaled, bk, x, ranks, np.array([[1.0], [3.0]]))
    assert [b[0, ..., 0].tolist() for b in two] == [[[1.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [2.0, 0.0]]]

    class Plain:  # apply only
        apply = PairedRemoval.apply

    assert [b[0, ..., 0].tolist() for b in apply_group(Plain(), bk, x, ranks, np.array([[1.0], [3.0]]))] == [
        [[1.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]]


def test_apply_group_must_return_one_batch_per_row():
    class Short(PairedRemoval):
        def apply_group(self, backend, x, ranks, rows):
            return [x]

    with pytest.raises(ValueError, match=r"apply_group\(\) returned 1 batch\(es\) for 2 parameter rows"):
        apply_group(Short(), resolve_backend("numpy"), np.ones((1, 2, 2, 1)), np.zeros((1, 2, 2, 1)), np.ones((2, 1)))


if __name__ == "__main__" and "--child" in sys.argv:
    child_main()
