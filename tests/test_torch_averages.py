"""camavg_torch.AveragesCam: the numbers (against NumPy), PyTorch as users run it, and the
forms of score functions and CAMs that pytorch-grad-cam and torchcam users hold.

The models are a dense layer whose weights are known, so every expected score is worked out
in NumPy (``numpy_scores``); pytorch-grad-cam's target classes are copied here as that package
writes them (it imports torchvision, which does not install beside torch 2.13).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from camavg_torch import AveragesCam, CategoricalScore  # noqa: E402
from reference import reference_metrics  # noqa: E402

N, C, H, W, CLASSES = 6, 2, 4, 4, 3
RNG = np.random.default_rng(5)
WEIGHT = RNG.normal(0, 0.8, (CLASSES, C * H * W)).astype(np.float32)
BIAS = RNG.normal(0, 0.1, CLASSES).astype(np.float32)
IMAGES = RNG.random((N, C, H, W)).astype(np.float32)
CAMS = RNG.random((N, H, W)).astype(np.float32)
LABELS = np.array([0, 1, 2, 0, 1, 2])


class ClassifierOutputTarget:  # pytorch-grad-cam 1.5's, as written there
    def __init__(self, category):
        self.category = category

    def __call__(self, model_output):
        if len(model_output.shape) == 1:
            return model_output[self.category]
        return model_output[:, self.category]


class ClassifierOutputSoftmaxTarget:  # pytorch-grad-cam 1.5's, as written there
    def __init__(self, category):
        self.category = category

    def __call__(self, model_output):
        if len(model_output.shape) == 1:
            return torch.softmax(model_output, dim=-1)[self.category]
        return torch.softmax(model_output, dim=-1)[:, self.category]


def dense(softmax_layer: bool = False) -> nn.Module:
    linear = nn.Linear(C * H * W, CLASSES)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(WEIGHT))
        linear.bias.copy_(torch.from_numpy(BIAS))
    layers = [nn.Flatten(), linear] + ([nn.Softmax(dim=-1)] if softmax_layer else [])
    return nn.Sequential(*layers)


class FunctionalSoftmax(nn.Module):
    """A classifier whose softmax is a function call, not a module: its last leaf is the
    Linear, but the model's output is not the Linear's output."""

    def __init__(self):
        super().__init__()
        self.body = dense()

    def forward(self, x):
        return torch.softmax(self.body(x), dim=-1)


def numpy_scores(images, maps, labels=LABELS):
    """(Y_c, O_c) of the softmax of the dense layer, in float64."""

    def probabilities(x):
        z = x.reshape(len(x), -1).astype(np.float64) @ WEIGHT.T.astype(np.float64) + BIAS
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    rows = np.arange(len(images))
    return probabilities(images)[rows, labels], probabilities(images * maps[:, None])[rows, labels]


def check_against_numpy(result, maps=CAMS, labels=LABELS, atol=1e-5):
    y_c, o_c = numpy_scores(IMAGES, maps, labels)
    np.testing.assert_allclose(result.y_c, y_c, atol=atol)
    np.testing.assert_allclose(result.o_c, o_c, atol=atol)
    expected = reference_metrics(y_c, o_c)
    for name in ("average_drop", "average_increase", "average_gain"):
        assert getattr(result, name) == pytest.approx(expected[name], abs=1e-3), name


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("as_tensor", [False, True])
def test_softmax_model_gives_the_numpy_numbers(as_tensor):
    images = torch.from_numpy(IMAGES.copy()) if as_tensor else IMAGES
    cams = torch.from_numpy(CAMS.copy()) if as_tensor else CAMS
    result = AveragesCam(dense(softmax_layer=True), images, batch_size=4).evaluate(cams, CategoricalScore(LABELS))
    check_against_numpy(result, cams if not as_tensor else CAMS)
    assert result.n == N


def test_logit_model_with_activation_softmax_gives_the_softmax_numbers():
    result = AveragesCam(dense(), IMAGES, activation="softmax").evaluate(CAMS, CategoricalScore(LABELS))
    check_against_numpy(result)


def test_smaller_cams_are_resized_as_torch_interpolate_does():
    small = RNG.random((N, 2, 2)).astype(np.float32)
    # half-pixel centres without antialiasing: F.interpolate with align_corners=False
    full = nn.functional.interpolate(torch.from_numpy(small)[:, None], size=(H, W), mode="bilinear",
                                     align_corners=False)[:, 0].numpy()
    result = AveragesCam(dense(True), IMAGES).evaluate(small, CategoricalScore(LABELS))
    check_against_numpy(result, full)


def test_channels_last_and_uint8_images():
    channels_last = np.moveaxis(IMAGES, 1, -1)

    def model(x):  # back to NCHW, so the same dense layer applies
        return dense(True)(x.permute(0, 3, 1, 2))

    result = AveragesCam(model, channels_last, data_format="channels_last").evaluate(CAMS, CategoricalScore(LABELS))
    check_against_numpy(result)
    pixels = (IMAGES * 255).round().astype(np.uint8)
    # cast to the model's float32 before masking: no integer truncation of x * cam
    metrics = AveragesCam(lambda x: dense(True)(x / 255.0), pixels)
    y_c, o_c = numpy_scores(pixels / 255.0, CAMS)
    result = metrics.evaluate(CAMS, CategoricalScore(LABELS))
    np.testing.assert_allclose(result.o_c, o_c, atol=1e-5)


def test_multi_input_model_is_called_with_one_argument_per_input():
    def model(first, second):
        return dense(True)((first + second) / 2)

    result = AveragesCam(model, [IMAGES, IMAGES]).evaluate([CAMS, CAMS], CategoricalScore(LABELS))
    check_against_numpy(result)


def test_every_metric_and_evaluate_many_and_compare():
    metrics = AveragesCam(dense(True), IMAGES)
    score = CategoricalScore(LABELS)
    y_c, o_c = numpy_scores(IMAGES, CAMS)
    expected = reference_metrics(y_c, o_c)
    value, y, o = metrics.average_drop(CAMS, score, return_vector=True)
    assert value == pytest.approx(expected["average_drop"], abs=1e-3)
    np.testing.assert_allclose(o, o_c, atol=1e-5)
    assert metrics.average_increase(CAMS, score) == pytest.approx(expected["average_increase"])
    assert metrics.average_gain(CAMS, score) == pytest.approx(expected["average_gain"], abs=1e-3)
    other = np.ones_like(CAMS)
    many = metrics.evaluate_many({"random": CAMS, "ones": other}, score)
    assert many["ones"].average_drop == pytest.approx(0.0, abs=1e-3)  # the unmasked image
    table = metrics.compare({"random": CAMS, "ones": other}, score)
    assert set(table.results) == {"random", "ones"}


# --------------------------------------------------------------------------- PyTorch as users run it
class Spy(nn.Module):
    """Records the mode it ran in: training flag, inference mode, grad mode."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append((self.training, torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
        return x


def test_passes_run_in_eval_and_inference_mode_and_training_flags_are_restored():
    spy = Spy()
    model = nn.Sequential(spy, nn.Dropout(0.5), dense(True), nn.BatchNorm1d(CLASSES, affine=False), nn.Softmax(-1))
    model.train()
    model[1].eval()  # a submodule the user froze on purpose stays frozen
    before = [m.training for m in model.modules()]
    metrics = AveragesCam(model, IMAGES, batch_size=4)
    metrics.evaluate(CAMS, CategoricalScore(LABELS))
    assert [m.training for m in model.modules()] == before
    assert spy.seen and all(seen == (False, True, False) for seen in spy.seen)


def test_a_failing_pass_restores_the_training_flags():
    model = nn.Sequential(dense(True), nn.Softmax(-1))
    model.train()
    with pytest.raises(ValueError):
        AveragesCam(model, IMAGES).evaluate(CAMS, lambda out: out[:2, 0])  # wrong shape, after the pass
    assert all(m.training for m in model.modules())


@pytest.mark.slow
def test_compiled_pass_gives_the_same_numbers():
    plain = AveragesCam(dense(True), IMAGES).evaluate(CAMS, CategoricalScore(LABELS))
    # the eager backend of torch.compile: dynamo traces the pass, no C compiler needed
    compiled = AveragesCam(dense(True), IMAGES, compile={"backend": "eager"}).evaluate(CAMS, CategoricalScore(LABELS))
    np.testing.assert_allclose(compiled.o_c, plain.o_c, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["deletion", "insertion", "mufidelity", "road"])
def test_a_compiled_pass_runs_every_metric(metric):
    # dynamo traces each metric's perturbation with the model; ROAD's solver runs as written
    # inside the traced pass (traced, its exact level's set-up stopped on a torch assertion)
    plain = getattr(AveragesCam(dense(True), IMAGES), metric)(CAMS, CategoricalScore(LABELS), return_vector=True)
    compiled = getattr(AveragesCam(dense(True), IMAGES, compile={"backend": "eager"}), metric)(
        CAMS, CategoricalScore(LABELS), return_vector=True)
    for got, expected in zip(compiled, plain):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_outputs_that_are_not_one_row_per_sample_are_refused():
    with pytest.raises(ValueError, match="must return one row per sample"):
        AveragesCam(lambda x: x.sum(), IMAGES)


# --------------------------------------------------------------------------- logits from the model
def test_a_last_linear_layer_is_logits_and_the_message_names_it_and_the_fix():
    metrics = AveragesCam(dense(), IMAGES)
    with pytest.raises(ValueError) as caught:
        metrics.evaluate(CAMS, [ClassifierOutputTarget(int(c)) for c in LABELS])
    message = str(caught.value)
    assert "'1' (Linear(in_features=32, out_features=3, bias=True))" in message
    assert "Pass activation='softmax'" in message and "ClassifierOutputTarget" in message
    with pytest.raises(ValueError, match="activation='softmax'"):
        metrics.average_gain(CAMS, CategoricalScore(LABELS))
    with pytest.warns(UserWarning):  # increase is defined on logits, but says so
        metrics.average_increase(CAMS, CategoricalScore(LABELS))


def test_a_dropout_after_the_last_linear_still_gives_logits():
    model = nn.Sequential(dense(), nn.Dropout(0.2), nn.Identity())
    with pytest.raises(ValueError, match="'0.1' \\(Linear"):
        AveragesCam(model, IMAGES).evaluate(CAMS, CategoricalScore(LABELS))


def test_a_softmax_after_the_linear_is_not_logits():
    for model in (dense(softmax_layer=True), FunctionalSoftmax()):
        check_against_numpy(AveragesCam(model, IMAGES).evaluate(CAMS, CategoricalScore(LABELS)))


def test_a_plain_callable_falls_back_to_the_value_check():
    model = dense()
    metrics = AveragesCam(lambda x: model(x) * 20, IMAGES)
    with pytest.raises(ValueError, match="the model seems to return logits. Pass activation='softmax'"):
        metrics.evaluate(CAMS, CategoricalScore(LABELS))


# --------------------------------------------------------------------------- score functions
def test_pytorch_grad_cam_targets_equal_categorical_score():
    metrics = AveragesCam(dense(), IMAGES, activation="softmax")
    by_labels = metrics.evaluate(CAMS, CategoricalScore(LABELS))
    by_targets = metrics.evaluate(CAMS, [ClassifierOutputTarget(int(c)) for c in LABELS])
    # recognised by behaviour: any callable of one sample's output
    by_lambdas = metrics.evaluate(CAMS, [lambda out, c=int(c): out[c] for c in LABELS])
    by_batch = metrics.evaluate(CAMS, lambda outputs: outputs[torch.arange(N), torch.from_numpy(LABELS)])
    for result in (by_labels, by_targets, by_lambdas, by_batch):
        check_against_numpy(result)


def test_softmax_targets_score_the_logits_themselves():
    softmax_targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in LABELS]
    # the outputs are logits and the targets take the softmax: 'identity' says the scores are fine
    check_against_numpy(AveragesCam(dense(), IMAGES, activation="identity").evaluate(CAMS, softmax_targets))
    with pytest.raises(ValueError, match="softmax\\(softmax\\(z\\)\\)"):
        AveragesCam(dense(), IMAGES, activation="softmax").evaluate(CAMS, softmax_targets)


def test_class_labels_as_the_score_function_name_the_helper():
    metrics = AveragesCam(dense(True), IMAGES)
    with pytest.raises(TypeError, match="camavg_torch.CategoricalScore\\(labels\\)"):
        metrics.evaluate(CAMS, LABELS.tolist())
    with pytest.raises(ValueError, match="class index 7 \\(sample 2\\) is out of range"):
        metrics.evaluate(CAMS, [ClassifierOutputTarget(c) for c in (0, 1, 7, 0, 1, 2)])
    with pytest.raises(ValueError, match="score_function\\[0\\] returned shape \\(3,\\)"):
        metrics.evaluate(CAMS, [lambda out: out] * N)


# --------------------------------------------------------------------------- CAMs
def test_torchcam_list_of_one_layer_is_that_layer_and_several_are_refused():
    metrics = AveragesCam(dense(True), IMAGES)
    layer = torch.from_numpy(CAMS.copy())
    check_against_numpy(metrics.evaluate([layer], CategoricalScore(LABELS)))
    with pytest.raises(ValueError, match="fuse_cams"):
        metrics.evaluate([layer, layer], CategoricalScore(LABELS))


@pytest.mark.parametrize("as_tensor", [False, True])
def test_cams_changed_in_place_give_the_new_numbers(as_tensor):
    metrics = AveragesCam(dense(True), IMAGES)
    cams = torch.from_numpy(CAMS.copy()) if as_tensor else CAMS.copy()
    metrics.evaluate(cams, CategoricalScore(LABELS))
    cams[:] = 1 - cams
    check_against_numpy(metrics.evaluate(cams, CategoricalScore(LABELS)), 1 - CAMS)


def test_nothing_is_modified():
    model, images, cams = dense(True), torch.from_numpy(IMAGES.copy()), torch.from_numpy(CAMS.copy())
    weights = [p.detach().clone() for p in model.parameters()]
    metrics = AveragesCam(model, images, normalize=True, batch_size=4)
    metrics.evaluate(cams, CategoricalScore(LABELS))
    metrics.evaluate_many([cams, cams], CategoricalScore(LABELS))
    np.testing.assert_array_equal(images.numpy(), IMAGES)
    np.testing.assert_array_equal(cams.numpy(), CAMS)
    assert metrics.inputs is images
    for before, after in zip(weights, model.parameters()):
        assert torch.equal(before, after)


def test_threads_sharing_an_averages_cam_get_the_serial_numbers():
    metrics = AveragesCam(dense(True), IMAGES, batch_size=4)
    cam_sets = [np.clip(CAMS + shift, 0, 1).astype(np.float32) for shift in (0.0, 0.2, -0.2, 0.4)]
    serial = [metrics.evaluate(cams, CategoricalScore(LABELS)).o_c for cams in cam_sets]
    errors, results = [], {}

    def work(index):
        try:
            for _ in range(3):
                results[index] = metrics.evaluate(cam_sets[index], CategoricalScore(LABELS)).o_c
        except Exception as error:  # collected, and the test fails on it
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cam_sets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for index, expected in enumerate(serial):
        np.testing.assert_array_equal(results[index], expected)


# --------------------------------------------------------------------------- fingerprint
def test_fingerprint_changes_with_any_parameter_or_buffer():
    model = nn.Sequential(dense(), nn.BatchNorm1d(CLASSES))
    adapter = AveragesCam(model, IMAGES).adapter
    first = adapter.model_version()
    structure, sums = first
    assert len(structure[0]) == len(structure[1]) == len(list(model.modules())) and len(sums) == 4
    assert adapter.model_version() == first  # the passes changed nothing (eval mode: no BN update)
    weight = model[0][1].weight
    with torch.no_grad():
        weight[0, [0, 1]] = weight[0, [1, 0]].clone()  # a swap keeps every plain sum
    swapped = adapter.model_version()
    assert swapped != first
    with torch.no_grad():
        model[1].running_mean += 0.5
    assert adapter.model_version() != swapped
    assert AveragesCam(lambda x: x.reshape(len(x), -1), IMAGES).adapter.model_version() is None


class Temperature(nn.Module):
    """Divides by a plain attribute that ``forward`` reads: no weight holds it."""

    def __init__(self, temperature):
        super().__init__()
        self.temperature = temperature

    def forward(self, x):
        return x / self.temperature


@pytest.mark.parametrize("edit", ["module swapped", "setting changed", "setting rebound to a tensor"])
def test_a_module_swapped_or_a_setting_changed_is_a_new_model(edit):
    """Neither edit touches a weight. Each result is the model's as it is at the call, Y_c and
    O_c alike, against NumPy: the dense layer's logits over 1 (before) or over 0.5 (after). A
    setting rebound to a tensor is compared by identity (the version holds it), so rebinding it
    to another tensor is a change again; a new AveragesCam on the edited model agrees."""

    def scores(maps, temperature):
        def probabilities(x):
            z = (x.reshape(len(x), -1).astype(np.float64) @ WEIGHT.T.astype(np.float64) + BIAS) / temperature
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return (z / z.sum(axis=1, keepdims=True))[np.arange(N), LABELS]
        return probabilities(IMAGES), probabilities(IMAGES * maps[:, None])

    model = nn.Sequential(dense(), Temperature(1.0), nn.Softmax(dim=-1))
    metrics = AveragesCam(model, IMAGES)
    score = CategoricalScore(LABELS)
    result = metrics.evaluate(CAMS, score)
    np.testing.assert_allclose((result.y_c, result.o_c), scores(CAMS, 1.0), atol=1e-6)
    if edit == "module swapped":
        model[1] = Temperature(0.5)
    elif edit == "setting changed":
        model[1].temperature = 0.5
    else:
        model[1].temperature = torch.tensor(0.5)
    other = CAMS[::-1].copy()
    for maps in (CAMS, other):  # the CAMs of the last call (its outputs kept), then new ones
        y_c, o_c = scores(maps, 0.5)
        assert np.abs(y_c - scores(maps, 1.0)[0]).max() > 1e-2  # the edit moves every Y_c
        result = metrics.evaluate(maps, score)
        np.testing.assert_allclose((result.y_c, result.o_c), (y_c, o_c), atol=1e-6)
    fresh = AveragesCam(model, IMAGES).evaluate(other, score)
    np.testing.assert_allclose((fresh.y_c, fresh.o_c), scores(other, 0.5), atol=1e-6)
    if edit == "setting rebound to a tensor":
        model[1].temperature = torch.tensor(0.25)  # another tensor: the same CAMs, new numbers
        result = metrics.evaluate(other, score)
        np.testing.assert_allclose((result.y_c, result.o_c), scores(other, 0.25), atol=1e-6)


def test_the_training_flag_is_not_a_setting():
    """Every pass runs in eval mode, so ``model.train()`` leaves the version as it was (a
    version that moved with it would cost a plain pass per call after each toggle)."""
    model = nn.Sequential(dense(), nn.Dropout(0.5), nn.BatchNorm1d(CLASSES))
    adapter = AveragesCam(model, IMAGES).adapter
    first = adapter.model_version()
    model.train()
    assert adapter.model_version() == first
    model[1].p = 0.25  # a setting, though eval mode ignores it: counted all the same
    assert adapter.model_version() != first


def test_fingerprint_sees_values_moved_between_tensors_and_integer_buffers():
    from camavg_torch.averages import TorchAdapter

    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.BatchNorm1d(2))
    adapter = TorchAdapter(model, torch.device("cpu"), compile=False)
    first = adapter.model_version()
    with torch.no_grad():  # the same values in every plain sum, each weight now in the other layer
        kept = model[0].weight.clone()
        model[0].weight.copy_(model[1].weight)
        model[1].weight.copy_(kept)
    swapped = adapter.model_version()
    assert swapped != first
    model[2].num_batches_tracked += 1  # an int64 buffer beside float32 weights
    assert adapter.model_version() != swapped


def test_weights_changed_between_calls_give_the_new_numbers():
    """The engine reads the model's version at each call: new weights, new Y_c and O_c."""
    model = dense(True)
    metrics = AveragesCam(model, IMAGES)
    check_against_numpy(metrics.evaluate(CAMS, CategoricalScore(LABELS)))
    with torch.no_grad():
        model[1].weight.mul_(-1.0)  # another model: the NumPy reference with the new weights
    result = metrics.evaluate(CAMS, CategoricalScore(LABELS))
    z = IMAGES.reshape(N, -1).astype(np.float64) @ (-WEIGHT.T.astype(np.float64)) + BIAS
    probabilities = np.exp(z - z.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.y_c, probabilities[np.arange(N), LABELS], atol=1e-5)


# --------------------------------------------------------------------------- the engine's guarantees
def test_inputs_changed_after_construction_do_not_count():
    images = torch.from_numpy(IMAGES.copy())
    metrics = AveragesCam(dense(True), images)
    images.zero_()
    check_against_numpy(metrics.evaluate(CAMS, CategoricalScore(LABELS)))


def test_several_metrics_of_one_cam_set_cost_one_masked_pass():
    spy = Spy()
    metrics = AveragesCam(nn.Sequential(spy, dense(True)), IMAGES, batch_size=N)
    assert len(spy.seen) == 1  # the plain pass, at construction
    score = CategoricalScore(LABELS)
    metrics.average_drop(CAMS, score)
    metrics.average_increase(CAMS, score)
    metrics.average_gain(CAMS, score)
    metrics.evaluate(CAMS, [ClassifierOutputTarget(int(c)) for c in LABELS])
    assert len(spy.seen) == 2  # one masked pass for the four calls
    metrics.evaluate(CAMS * 0.5, score)
    assert len(spy.seen) == 3


def test_a_score_function_is_applied_afresh_on_every_call():
    metrics = AveragesCam(dense(True), IMAGES)
    labels = LABELS.copy()
    score = lambda outputs: outputs[torch.arange(N), torch.from_numpy(labels)]  # noqa: E731
    first = metrics.evaluate(CAMS, score)
    labels[:] = (labels + 1) % CLASSES  # the targets it reads changed
    second = metrics.evaluate(CAMS, score)
    check_against_numpy(first)
    check_against_numpy(second, labels=labels)


def test_preprocess_runs_after_masking():
    metrics = AveragesCam(lambda x: dense(True)((x + 1) / 2), IMAGES, preprocess=lambda x: x * 2 - 1)
    check_against_numpy(metrics.evaluate(CAMS, CategoricalScore(LABELS)))


def test_warnings_point_at_the_users_line():
    metrics = AveragesCam(dense(), IMAGES)
    with pytest.warns(UserWarning) as caught:
        metrics.average_increase(CAMS, CategoricalScore(LABELS))
    assert caught[0].filename == __file__


def test_the_torch_backend_is_found_by_name_and_by_tensor():
    from camavg_core import get_backend, resolve_backend

    assert resolve_backend("torch") is resolve_backend("pytorch") is get_backend(torch.zeros(2))
    assert resolve_backend("torch").name == "torch"
