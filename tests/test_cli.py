"""The ``camavg`` command on tiny data: its numbers, its files, and its errors.

The numbers are checked two ways: against ``camavg_tf.AveragesCam`` on the same data, and
against the tests' shared NumPy reference of the equations (reference.py) on ``model.predict``
of the plain and masked inputs. Most cases call ``main`` in-process (TensorFlow's import costs
seconds per process); a few run the real command in a subprocess, for its exit status and streams.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

# Keras' own model.save trips NumPy 2's __array__ deprecation inside Keras; not camavg's, not the user's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

from camavg_tf import AveragesCam  # noqa: E402
from camavg_cli.cli import main  # noqa: E402
from camavg_core import RoadNoiseWarning  # noqa: E402
from reference import reference_metrics, reference_road_value  # noqa: E402

N, SIZE, CLASSES = 6, 8, 3


def _tiny_model(final_activation: str | None, bias: float = 0.0):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3), name="pixels")
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_top")(features)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    outputs = keras.layers.Dense(
        CLASSES, activation=final_activation, name="scores", bias_initializer=keras.initializers.Constant(bias)
    )(pooled)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved softmax model, a logit model, inputs, targets and two CAM sets, on disk."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(11)
    inputs = rng.random((N, SIZE, SIZE, 3)).astype(np.float32)
    targets = np.array([0, 1, 2, 0, 1, 2], dtype=np.int64)
    cams = {"alpha": rng.random((N, SIZE, SIZE)).astype(np.float32),
            # Another spatial size: the command resizes it like AveragesCam does.
            "beta": rng.random((N, 4, 4)).astype(np.float32)}
    paths = {"model": folder / "tiny.keras", "logits": folder / "logits.keras",
             "inputs": folder / "x.npy", "targets": folder / "y.npy",
             "alpha": folder / "alpha.npy", "beta": folder / "beta.npy", "npz": folder / "x.npz"}
    _tiny_model("softmax").save(paths["model"])
    # A negative bias makes every logit negative, so Y_c < 0 without a softmax.
    _tiny_model(None, bias=-5.0).save(paths["logits"])
    np.save(paths["inputs"], inputs)
    np.savez(paths["npz"], images=inputs, extra=targets)
    np.save(paths["targets"], targets)
    for name in ("alpha", "beta"):
        np.save(paths[name], cams[name])
    return {"paths": {k: str(v) for k, v in paths.items()}, "inputs": inputs, "targets": targets,
            "cams": cams, "folder": folder}


def _run_in_process(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _numpy_metrics(model, inputs, targets, cams):
    """The shared NumPy reference of the three equations on model.predict of plain and masked inputs."""
    if cams.shape[1:] != inputs.shape[1:3]:  # nearest-free check: only used for same-size CAMs
        raise AssertionError("same-size CAMs only")
    rows = np.arange(len(targets))
    y_c = model.predict(inputs, verbose=0)[rows, targets].astype(np.float64)
    o_c = model.predict(inputs * cams[..., None], verbose=0)[rows, targets].astype(np.float64)
    metrics = reference_metrics(y_c, o_c)
    return metrics["average_drop"], metrics["average_increase"], metrics["average_gain"], y_c, o_c


def _evaluate_args(files, *extra):
    paths = files["paths"]
    return ["evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--targets", paths["targets"],
            "--cams", paths["alpha"], paths["beta"], *extra]


# ----------------------------------------------------------------------------- numbers
@pytest.mark.slow
def test_subprocess_json_matches_averagescam_and_numpy(files, tmp_path):
    out = tmp_path / "report"
    command = [sys.executable, "-m", "camavg_cli", *_evaluate_args(files, "--format", "json", "--out", str(out), "--quiet")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert finished.returncode == 0, finished.stderr
    records = json.loads(finished.stdout)
    assert [record["method"] for record in records] == ["alpha", "beta"]

    model = keras.models.load_model(files["paths"]["model"])
    from tf_keras_vis.utils.scores import CategoricalScore

    metrics = AveragesCam(model, files["inputs"])
    score = CategoricalScore(files["targets"].tolist())
    for record in records:
        expected = metrics.evaluate(files["cams"][record["method"]], score)
        for field in ("average_drop", "average_increase", "average_gain"):
            assert record[field] == pytest.approx(getattr(expected, field), abs=1e-9)
        assert record["n"] == N
        np.testing.assert_allclose(record["y_c"], expected.y_c, rtol=1e-6)
        np.testing.assert_allclose(record["o_c"], expected.o_c, rtol=1e-6)

    # Independently of camavg: the equations in NumPy on the same-size CAM set.
    drop, increase, gain, y_c, o_c = _numpy_metrics(model, files["inputs"], files["targets"], files["cams"]["alpha"])
    alpha = records[0]
    assert alpha["average_drop"] == pytest.approx(drop, abs=1e-3)
    assert alpha["average_increase"] == pytest.approx(increase, abs=1e-9)
    assert alpha["average_gain"] == pytest.approx(gain, abs=1e-3)
    np.testing.assert_allclose(alpha["y_c"], y_c, rtol=1e-5)

    # The files: results.json holds the same records as stdout; the PNG is a PNG.
    assert json.loads((out / "results.json").read_text()) == records
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_csv_and_table_hold_the_json_numbers(files, tmp_path, capsys):
    status, json_out, _ = _run_in_process(capsys, *_evaluate_args(files, "--format", "json", "--quiet", "--no-plot", "--out", str(tmp_path / "out")))
    assert status == 0
    records = {record["method"]: record for record in json.loads(json_out)}

    status, csv_out, _ = _run_in_process(capsys, *_evaluate_args(files, "--format", "csv", "--quiet", "--no-plot", "--out", str(tmp_path / "out")))
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(csv_out)))
    assert [row["method"] for row in rows] == ["alpha", "beta"]
    for row in rows:
        for field in ("average_drop", "average_increase", "average_gain"):
            assert float(row[field]) == pytest.approx(records[row["method"]][field])
        assert int(row["n"]) == N
    assert (tmp_path / "out" / "results.csv").read_text() == csv_out

    status, table, _ = _run_in_process(capsys, *_evaluate_args(files, "--quiet", "--no-plot", "--out", str(tmp_path / "out")))
    assert status == 0
    lines = table.strip().splitlines()
    assert lines[0].split()[:3] == ["method", "Average", "Drop"]
    alpha_line = next(line for line in lines if line.startswith("alpha"))
    assert f"{records['alpha']['average_drop']:.2f}" in alpha_line
    if records["alpha"]["ci"] is not None:  # the intervals, once the statistics give them
        low, high = records["alpha"]["ci"]["average_drop"]
        assert f"[{low:.2f}, {high:.2f}]" in alpha_line
        assert float(rows[0]["average_drop_low"]) == pytest.approx(low)
        assert float(rows[0]["average_drop_high"]) == pytest.approx(high)


@pytest.mark.slow
def test_top1_targets_the_argmax(files, tmp_path, capsys):
    paths = files["paths"]
    status, out, _ = _run_in_process(
        capsys, "evaluate", "--model", paths["model"], "--inputs", paths["npz"], "--top1",
        "--cams", paths["alpha"], "--format", "json", "--quiet", "--no-plot", "--out", str(tmp_path / "out"))
    assert status == 0
    model = keras.models.load_model(paths["model"])
    top1 = model.predict(files["inputs"], verbose=0).argmax(axis=1)
    drop, increase, gain, y_c, _ = _numpy_metrics(model, files["inputs"], top1, files["cams"]["alpha"])
    record = json.loads(out)[0]
    np.testing.assert_allclose(record["y_c"], y_c, rtol=1e-5)
    assert record["average_drop"] == pytest.approx(drop, abs=1e-3)


def test_top1_of_one_logit_unit_is_the_positive_class_where_the_logit_is_positive(tmp_path, capsys):
    """A Dense(1) without activation, run with --activation sigmoid: every logit here lies in
    [0, 1] (about 0.23), so each image's top-1 class is 1 (sigmoid > 0.5). The cut-off of 0.5
    for outputs in [0, 1] took them for probabilities and targeted class 0 (1 - p) everywhere:
    Average Increase 100 and Drop 0 where the sigmoid's own numbers are 0 and 0.75."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 8, 8, 1)).astype("float32")
    cams = rng.uniform(0, 1, (8, 8, 8)).astype("float32")
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    model.layers[-1].set_weights([np.full((64, 1), 0.001, np.float32), np.array([0.2], np.float32)])
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "c.npy", cams)
    status, out, _ = _run_in_process(
        capsys, "evaluate", "--model", str(tmp_path / "m.keras"), "--inputs", str(tmp_path / "x.npy"), "--top1",
        "--cams", str(tmp_path / "c.npy"), "--activation", "sigmoid", "--format", "json", "--quiet", "--no-plot",
        "--out", str(tmp_path / "out"))
    assert status == 0
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))  # noqa: E731
    logits = model.predict(x, verbose=0)[:, 0]
    assert (logits > 0).all() and (logits < 1).all()
    y_c, o_c = sigmoid(logits), sigmoid(model.predict(x * cams[..., None], verbose=0)[:, 0])  # class 1 everywhere
    expected = reference_metrics(y_c, o_c)
    record = json.loads(out)[0]
    np.testing.assert_allclose(record["y_c"], y_c, rtol=1e-5)
    assert record["average_drop"] == pytest.approx(expected["average_drop"], abs=1e-3)
    assert record["average_increase"] == pytest.approx(expected["average_increase"], abs=1e-6)


def test_activation_softmax_on_a_logit_model(files, tmp_path, capsys):
    paths = files["paths"]
    status, out, err = _run_in_process(
        capsys, "evaluate", "--model", paths["logits"], "--inputs", paths["inputs"], "--targets", paths["targets"],
        "--cams", paths["alpha"], "--activation", "softmax", "--format", "json", "--quiet", "--no-plot", "--out", str(tmp_path / "out"))
    assert status == 0, err
    model = keras.models.load_model(paths["logits"])
    rows = np.arange(N)
    logits = model.predict(files["inputs"], verbose=0).astype(np.float64)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(json.loads(out)[0]["y_c"], softmax[rows, files["targets"]], rtol=1e-5)


@pytest.mark.slow
def test_method_makes_tf_keras_vis_cams(files, tmp_path, capsys):
    paths = files["paths"]
    status, out, err = _run_in_process(
        capsys, "evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--targets", paths["targets"],
        "--method", "gradcam,gradcam++,scorecam,layercam", "--layer", "conv_top", "--batch-size", "4",
        "--format", "json", "--quiet", "--out", str(tmp_path / "out"))
    assert status == 0, err
    records = json.loads(out)
    assert [record["method"] for record in records] == ["gradcam", "gradcam++", "scorecam", "layercam"]
    for record in records:
        assert record["n"] == N
        assert 0.0 <= record["average_drop"] <= 100.0
    assert (tmp_path / "out" / "report.png").exists()


def test_compare_reports_every_pair(files, tmp_path, capsys):
    status, out, err = _run_in_process(capsys, *_evaluate_args(files, "--compare", "--format", "json", "--quiet", "--no-plot", "--out", str(tmp_path / "out")))
    assert status == 0, err
    document = json.loads(out)
    assert [r["method"] for r in document["results"]] == ["alpha", "beta"]
    rows = {row["metric"]: row for row in document["comparisons"]}
    assert set(rows) == {"average_drop", "average_increase", "average_gain"}
    pair = rows["average_drop"]
    assert (pair["a"], pair["b"]) == ("alpha", "beta")
    by_method = {r["method"]: r for r in document["results"]}
    # The difference of Average Drop is the difference of the two methods' Average Drop.
    assert pair["difference"] == pytest.approx(by_method["alpha"]["average_drop"] - by_method["beta"]["average_drop"], abs=1e-6)
    assert pair["low"] <= pair["difference"] <= pair["high"]
    # One pair: Holm's adjustment leaves its p-value as it is.
    assert 0.0 <= pair["p_value"] == pair["p_adjusted"] <= 1.0
    assert (tmp_path / "out" / "comparisons.json").exists()


@pytest.mark.slow
def test_compare_against_a_baseline(files, tmp_path, capsys):
    args = _evaluate_args(files, "--compare", "--baseline", "alpha", "--format", "json", "--quiet", "--no-plot",
                          "--out", str(tmp_path / "out"))
    status, out, err = _run_in_process(capsys, *args)
    assert status == 0, err
    assert {(row["a"], row["b"]) for row in json.loads(out)["comparisons"]} == {("beta", "alpha")}
    args = _evaluate_args(files, "--compare", "--baseline", "gamma", "--quiet", "--no-plot", "--out", str(tmp_path / "out2"))
    _assert_one_line_error(*_run_in_process(capsys, *args), "--baseline 'gamma'", "alpha, beta")


def test_compare_says_in_words_what_the_users_methods_show(files, tmp_path, capsys):
    out = tmp_path / "out"
    status, table, err = _run_in_process(capsys, *_evaluate_args(files, "--compare", "--quiet", "--no-plot", "--out", str(out)))
    assert status == 0, err
    text = (out / "conclusion.txt").read_text()
    assert text.rstrip("\n") in table  # printed under the tables, and written
    drops = {r["method"]: r["average_drop"] for r in json.loads((out / "results.json").read_text())}
    ranked = sorted(drops, key=drops.get)
    assert f"ranking by Average Drop: {ranked[0]} ({drops[ranked[0]]:.2f}) < {ranked[1]} ({drops[ranked[1]]:.2f})" in text
    (bullet,) = [line for line in text.splitlines() if line.startswith("  - ")]
    assert bullet.startswith(f"  - {ranked[0]} ") and f"{abs(drops['alpha'] - drops['beta']):.2f} points lower" in bullet
    assert "Reference maps" not in text  # the user's own CAM sets come without the demo's references


def _no_work(monkeypatch):
    """Make loading the model fail the test: what is checked before any work never gets there."""
    from camavg_cli import cli

    def loaded(*args):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(cli, "_load_model", loaded)


def test_road_on_inputs_outside_0_1_needs_road_noise_and_takes_it(files, tmp_path, capsys, monkeypatch):
    """ROAD's default noise, 0.01, is the original's for [0, 1] pixels: on [0, 255] inputs the
    command refuses it before any work and names --road-noise; with --road-noise 2.55 each CAM
    set's ROAD is tests/reference.py's (spsolve's imputation plus 2.55 times each sample's
    seeded normals, the model scoring the images it makes), and the conclusion states ROAD.
    --road-noise without road is refused."""
    from camavg_core.imputation import DEFAULT_FRACTIONS

    paths, x255 = files["paths"], files["inputs"] * np.float32(255)
    np.save(tmp_path / "x255.npy", x255)
    argv = ["evaluate", "--model", paths["model"], "--inputs", str(tmp_path / "x255.npy"), "--targets", paths["targets"],
            "--cams", paths["alpha"], paths["beta"], "--metrics", "average_drop,road", "--no-plot", "--format", "json",
            "--out", str(tmp_path / "out")]
    with monkeypatch.context() as patch:
        _no_work(patch)
        status, out, err = _run_in_process(capsys, *argv)
        _assert_one_line_error(status, out, err, f"--inputs {tmp_path / 'x255.npy'} span [", "[0, 1]", "--road-noise",
                               "2.55 for [0, 255] pixels")
        status, out, err = _run_in_process(capsys, *_evaluate_args(files, "--road-noise", "1"))
        _assert_one_line_error(status, out, err, "--road-noise", "without --metrics road")
    assert not (tmp_path / "out").exists()

    with warnings.catch_warnings(record=True) as caught:  # chosen here: the Python API's warning is not shown
        warnings.simplefilter("always")
        status, out, err = _run_in_process(capsys, *argv, "--road-noise", "2.55", "--compare", "--quiet")
        kept, _, _ = _run_in_process(capsys, *argv, "--road-noise", "0.01", "--quiet", "--metrics", "road",
                                     "--out", str(tmp_path / "kept"))
    assert status == kept == 0, err
    assert not [w for w in caught if issubclass(w.category, RoadNoiseWarning)]
    record = json.loads(out)["results"][0]  # alpha's, the CAMs of the inputs' size
    model = keras.models.load_model(paths["model"])
    expected = {noise: reference_road_value(lambda images: model.predict(images, verbose=0), x255, files["cams"]["alpha"],
                                            files["targets"], DEFAULT_FRACTIONS, noise=noise)
                for noise in (2.55, 0.01)}
    assert record["road"] == pytest.approx(expected[2.55], abs=1e-5)
    assert list(record["settings"]) == ["road"] and "noise=2.55" in record["settings"]["road"]
    assert json.loads((tmp_path / "out" / "results.json").read_text())[0]["settings"] == record["settings"]
    assert abs(expected[2.55] - expected[0.01]) > 1e-4  # the noise shows in the number
    assert "ROAD (half the difference" in " ".join((tmp_path / "out" / "conclusion.txt").read_text().split())


def test_compare_with_one_method_is_refused_before_any_work(files, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    paths = files["paths"]
    common = ["evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--targets", paths["targets"],
              "--compare", "--quiet", "--no-plot", "--out", str(tmp_path / "out")]
    _assert_one_line_error(*_run_in_process(capsys, *common, "--cams", paths["alpha"]),
                           "--compare", "has one (alpha)", "two or more")
    _assert_one_line_error(*_run_in_process(capsys, *common, "--method", "gradcam", "--layer", "conv_top"),
                           "--compare", "has one (gradcam)")
    assert not (tmp_path / "out").exists()


def test_an_unknown_baseline_is_refused_before_any_work(files, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch)
    args = _evaluate_args(files, "--compare", "--baseline", "gamma", "--quiet", "--no-plot", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*_run_in_process(capsys, *args), "--baseline 'gamma'", "(alpha, beta)")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- errors
def _assert_one_line_error(status, out, err, *fragments):
    assert status == 2
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("camavg: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_error_missing_file(files, tmp_path, capsys):
    paths = files["paths"]
    missing = str(tmp_path / "nope.keras")
    result = _run_in_process(capsys, "evaluate", "--model", missing, "--inputs", paths["inputs"], "--top1",
                             "--cams", paths["alpha"], "--quiet", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "--model", "nope.keras", "no such file")
    result = _run_in_process(capsys, "evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--top1",
                             "--cams", paths["alpha"], str(tmp_path / "gone.npy"), "--quiet", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "--cams", "gone.npy", "no such file")


def test_error_unknown_layer_lists_the_conv_layers(files, tmp_path, capsys):
    paths = files["paths"]
    result = _run_in_process(capsys, "evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--top1",
                             "--method", "gradcam", "--layer", "conv9", "--quiet", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "'conv9'", "conv, conv_top")


def test_error_method_without_layer(files, tmp_path, capsys):
    paths = files["paths"]
    result = _run_in_process(capsys, "evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--top1",
                             "--method", "gradcam", "--quiet", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "--layer")


def test_error_shapes_that_do_not_match(files, tmp_path, capsys):
    paths = files["paths"]
    short_cams = tmp_path / "short.npy"
    np.save(short_cams, np.ones((N - 1, SIZE, SIZE), np.float32))
    result = _run_in_process(capsys, "evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--top1",
                             "--cams", str(short_cams), "--quiet", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "short.npy", f"({N - 1}, {SIZE}, {SIZE})")

    short_targets = tmp_path / "y_short.npy"
    np.save(short_targets, np.zeros(N + 2, np.int64))
    result = _run_in_process(capsys, "evaluate", "--model", paths["model"], "--inputs", paths["inputs"],
                             "--targets", str(short_targets), "--cams", paths["alpha"], "--quiet", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "--targets", f"({N + 2},)")

    wrong_images = tmp_path / "x_wrong.npy"
    np.save(wrong_images, np.zeros((N, SIZE + 2, SIZE + 2, 3), np.float32))
    result = _run_in_process(capsys, "evaluate", "--model", paths["model"], "--inputs", str(wrong_images),
                             "--top1", "--cams", paths["alpha"], "--quiet", "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "--inputs", f"({N}, {SIZE + 2}, {SIZE + 2}, 3)")


def test_error_logits_without_activation(files, tmp_path, capsys):
    paths = files["paths"]
    result = _run_in_process(capsys, "evaluate", "--model", paths["logits"], "--inputs", paths["inputs"],
                             "--targets", paths["targets"], "--cams", paths["alpha"], "--quiet", "--no-plot",
                             "--out", str(tmp_path / "out"))
    _assert_one_line_error(*result, "logits", "--activation softmax")


def test_error_exit_status_in_a_real_process(files, tmp_path):
    paths = files["paths"]
    command = [sys.executable, "-m", "camavg_cli", "evaluate", "--model", paths["model"], "--inputs",
               str(tmp_path / "missing.npy"), "--top1", "--cams", paths["alpha"], "--out", str(tmp_path / "out")]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    assert "camavg: error: --inputs" in finished.stderr and "missing.npy: no such file" in finished.stderr
    assert finished.stdout == ""


def test_usage_errors_exit_2(capsys):
    status = main(["evaluate", "--inputs", "x.npy"])
    _, err = capsys.readouterr()
    assert status == 2 and err.startswith("camavg: error: ") and "--model" in err and err.count("\n") == 1


@pytest.mark.slow
def test_nan_policy_omit_skips_and_says_so(files, tmp_path, capsys):
    broken = files["cams"]["alpha"].copy()
    broken[2] = np.nan  # a degenerate CAM (0/0 in its normalisation)
    path = tmp_path / "broken.npy"
    np.save(path, broken)
    paths = files["paths"]
    base = ["evaluate", "--model", paths["model"], "--inputs", paths["inputs"], "--targets", paths["targets"],
            "--cams", str(path), "--quiet", "--no-plot", "--out", str(tmp_path / "out")]
    status, _, err = _run_in_process(capsys, *base)
    assert status == 2 and "cams[2]" in err and "Traceback" not in err

    status, table, _ = _run_in_process(capsys, *base, "--nan-policy", "omit")
    assert status == 0
    assert "skipped" in table.splitlines()[0]
    status, json_out, _ = _run_in_process(capsys, *base, "--nan-policy", "omit", "--format", "json")
    record = json.loads(json_out)[0]
    assert record["n"] == N - 1 and record["skipped"] == 1
    # the same numbers as NumPy on the five finite samples
    model = keras.models.load_model(paths["model"])
    keep = np.arange(N) != 2
    drop, increase, gain, _, _ = _numpy_metrics(model, files["inputs"][keep], files["targets"][keep], files["cams"]["alpha"][keep])
    assert record["average_drop"] == pytest.approx(drop, abs=1e-3)
    assert record["average_increase"] == pytest.approx(increase, abs=1e-9)
