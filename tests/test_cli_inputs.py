"""Every bad input to ``camavg evaluate``: exit 2 and one ``camavg: error:`` line naming it.

The listed cases are files and arguments a user gets wrong; the Hypothesis test draws files and
arguments and checks that the outcome is exit 0 with correct files, or exit 2 with one error line,
never another exception, a traceback, NaN in a result, or a half-written file. ``main`` runs
in-process on one tiny Keras model saved once per module.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Keras' own model.save trips NumPy 2's __array__ deprecation inside Keras; not camavg's, not the user's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from camavg_cli.cli import main  # noqa: E402
from reference import reference_metrics  # noqa: E402

N, SIZE, CLASSES = 4, 6, 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-inputs")
    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(pooled))
    model.save(folder / "m.keras")
    rng = np.random.default_rng(0)
    x = rng.random((N, SIZE, SIZE, 3)).astype(np.float32)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", np.array([0, 1, 2, 0]))
    np.save(folder / "c.npy", rng.random((N, SIZE, SIZE)).astype(np.float32))
    return {"folder": folder, "model": model, "x": x, "y": np.array([0, 1, 2, 0])}


def _run(capsys, setup, *, inputs=None, targets=None, cams=None, extra=(), out=None):
    folder = setup["folder"]
    argv = ["evaluate", "--model", str(folder / "m.keras"), "--inputs", str(inputs or folder / "x.npy"),
            "--targets", str(targets or folder / "y.npy"), "--cams", *(map(str, cams or [folder / "c.npy"])),
            "--quiet", "--no-plot", "--out", str(out or folder / "out"), *extra]
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_error_line(status, out, err, *fragments):
    assert status == 2, (status, err)
    assert "Traceback" not in err + out
    assert err.count("\n") == 1 and err.startswith("camavg: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def _file(setup, name: str, content) -> str:
    path = setup["folder"] / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
        if path.suffix != ".npy":  # np.save adds .npy: give the file the name asked for
            (setup["folder"] / (name + ".npy")).rename(path)
    return str(path)


# ----------------------------------------------------------------------------- targets
@pytest.mark.parametrize("targets, fragments", [
    (np.array([0, -1, 2, 0]), ["--targets", "-1 at index 1", "count from 0"]),
    (np.array([0, 1.5, 2, 0]), ["--targets", "1.5 at index 1", "whole numbers"]),
    (np.array([0, np.nan, 2, 0]), ["--targets", "nan at index 1"]),
    (np.array([0, 1, 3, 0]), ["--targets", "class 3 at index 2", "3 output units", "0 to 2"]),
    (np.array([0, 1, 2]), ["--targets", "(3,)", "(4,)"]),
    (np.array(["a", "b", "c", "d"]), ["--targets", "<U1", "not numbers"]),
])
def test_bad_targets(capsys, setup, targets, fragments):
    _one_error_line(*_run(capsys, setup, targets=_file(setup, "bad_y.npy", targets)), *fragments)


# ----------------------------------------------------------------------------- files
def test_missing_renamed_truncated_corrupt_and_pickled_files(capsys, setup):
    good = (setup["folder"] / "x.npy").read_bytes()
    cases = {
        "missing.npy": (None, ["--inputs", "missing.npy", "no such file"]),
        "truncated.npy": (good[: len(good) // 2], ["--inputs", "truncated.npy", "truncated or corrupt"]),
        "garbled.npy": (good[:10] + b"{'descr': <f4 garbage" + good[40:], ["--inputs", "garbled.npy", "numpy.save"]),
        "text.npy": (b"1,2,3\n", ["--inputs", "text.npy", "not a NumPy .npy or .npz file"]),
        "empty.npy": (b"", ["--inputs", "empty.npy", "is empty"]),
        "corrupt.npz": (b"PK\x03\x04" + b"\x00" * 40, ["--inputs", "corrupt.npz", "truncated or corrupt"]),
    }
    for name, (content, fragments) in cases.items():
        path = setup["folder"] / name if content is None else _file(setup, name, content)
        _one_error_line(*_run(capsys, setup, inputs=path), *fragments)
    pickled = _file(setup, "objects.npy", np.array([{"a": 1}] * N, dtype=object))
    _one_error_line(*_run(capsys, setup, inputs=pickled), "objects.npy", "pickled", "numpy.save")


def test_renamed_npz_is_read_for_what_it_is(capsys, setup):
    """An .npz renamed to .npy still holds the inputs: read by content, not by name."""
    archive = setup["folder"] / "renamed.npy"
    with zipfile.ZipFile(archive, "w") as handle:
        with handle.open("inputs.npy", "w") as member:
            np.lib.format.write_array(member, setup["x"])
    status, _, err = _run(capsys, setup, inputs=archive, extra=("--format", "json"))
    assert status == 0, err


def test_npz_with_several_unnamed_arrays(capsys, setup):
    path = setup["folder"] / "several.npz"
    np.savez(path, a=setup["x"], b=setup["x"])
    _one_error_line(*_run(capsys, setup, inputs=path), "several.npz", "['a', 'b']", "inputs, x, images")


# ----------------------------------------------------------------------------- CAM shapes
@pytest.mark.parametrize("shape, fragments", [
    ((N, SIZE, SIZE, 3), ["channel axis", f"({N}, {SIZE}, {SIZE}, 3)"]),
    ((N, 1, SIZE, SIZE), ["channel axis first", "cams[:, 0]"]),
    ((SIZE, SIZE), ["single (H, W) map"]),
    ((N * SIZE * SIZE,), ["expected (N, H, W), got rank 1"]),
    ((N - 1, SIZE, SIZE), [f"holds {N - 1} maps", f"has {N} samples"]),
    ((N, 0, SIZE), ["empty"]),
])
def test_cam_shape_messages_name_the_problem(capsys, setup, shape, fragments):
    path = _file(setup, "shaped.npy", np.ones(shape, np.float32))
    status, out, err = _run(capsys, setup, cams=[path])
    _one_error_line(status, out, err, "--cams", "shaped.npy", *fragments)
    # A channel axis is not a sample count: the message never asks for N = number of inputs.
    assert f"N = {N}" not in err or shape == (SIZE, SIZE)


def test_cams_outside_unit_range_suggest_the_normalize_option(capsys, setup):
    path = _file(setup, "wide.npy", np.full((N, SIZE, SIZE), 3.0, np.float32) * np.arange(N)[:, None, None])
    status, out, err = _run(capsys, setup, cams=[path])
    _one_error_line(status, out, err, "wide.npy", "--normalize")
    assert "normalize=True" not in err
    status, out, err = _run(capsys, setup, cams=[path], extra=("--normalize", "--format", "json"))
    assert status == 0, err


# ----------------------------------------------------------------------------- --out
def test_out_naming_a_file_or_an_unwritable_place(capsys, setup, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    _one_error_line(*_run(capsys, setup, out=a_file), "--out", "taken", "is a file")
    assert a_file.read_text() == "mine"
    # Below a file: no folder can be made there (holds for root too, unlike permissions).
    _one_error_line(*_run(capsys, setup, out=a_file / "below"), "--out", "cannot write")
    if os.geteuid() != 0:
        blocked = tmp_path / "no-entry"
        blocked.mkdir(mode=0o500)
        _one_error_line(*_run(capsys, setup, out=blocked / "report"), "--out", "cannot write")


def test_out_with_files_of_the_user_is_never_replaced(capsys, setup, tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    status, out, err = _run(capsys, setup, out=tmp_path)
    assert status == 0, err
    assert (tmp_path / "thesis.tex").read_text() == "precious" and (tmp_path / "results.json").is_file()
    (tmp_path / "results.csv").write_text("precious too")  # a user's file where an output goes
    _one_error_line(*_run(capsys, setup, out=tmp_path), "--out", "results.csv", "not a file camavg wrote")
    assert (tmp_path / "results.csv").read_text() == "precious too"


def test_internal_error_exits_1_with_a_debug_hint(capsys, setup, monkeypatch):
    from camavg_cli import cli

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_emit", broken)
    status, out, err = _run(capsys, setup)
    assert status == 1 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("camavg: internal error: RuntimeError: boom") and "--debug" in err
    with pytest.raises(RuntimeError, match="boom"):
        main(["evaluate", "--model", str(setup["folder"] / "m.keras"), "--inputs", str(setup["folder"] / "x.npy"),
              "--top1", "--cams", str(setup["folder"] / "c.npy"), "--quiet", "--out", str(setup["folder"] / "o2"), "--debug"])


# ----------------------------------------------------------------------------- fuzzing
VALID_CAMS = hnp.arrays(np.float32, st.sampled_from([(N, SIZE, SIZE), (N, 3, 3)]),
                        elements=st.floats(0.0, 1.0, width=32, allow_subnormal=False))
ARRAYS = st.one_of(
    VALID_CAMS,
    VALID_CAMS,
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.float16]),
               st.sampled_from([(N, SIZE, SIZE), (N, SIZE, SIZE, 1), (N, 3, 3), (N,), (0, SIZE, SIZE),
                                (N, SIZE, SIZE, 3), (N - 1, SIZE, SIZE), (SIZE, SIZE), ()]),
               elements={"allow_subnormal": False, "allow_nan": True, "allow_infinity": True}),
    st.binary(max_size=64),
)
TARGETS = st.one_of(
    st.lists(st.sampled_from([0, 1, 2]), min_size=N, max_size=N).map(np.array),
    st.lists(st.sampled_from([0, 1, 2]), min_size=N, max_size=N).map(np.array),
    st.lists(st.sampled_from([-1, 0, 1, 2, 3, 0.5, float("nan")]), min_size=N - 1, max_size=N + 1).map(np.array),
    st.lists(st.sampled_from([0, 1, 2]), min_size=N, max_size=N).map(lambda y: np.eye(CLASSES)[y]),
    st.binary(max_size=32),
)


def _expected_drop(model, x, targets, cams):
    rows = np.arange(N)
    y_c = model.predict(x, verbose=0)[rows, targets].astype(np.float64)
    o_c = model.predict(x * cams[..., None], verbose=0)[rows, targets].astype(np.float64)
    return reference_metrics(y_c, o_c)["average_drop"]


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cams=ARRAYS, targets=TARGETS, policy=st.sampled_from(["raise", "omit"]), normalize=st.booleans(),
       batch=st.sampled_from([None, "1", "3", "0", "-2", "x"]))
def test_fuzz_main_exits_0_with_right_files_or_2_with_one_line(capsys, setup, cams, targets, policy, normalize, batch):
    folder = setup["folder"]
    cam_path, target_path = folder / "fuzz_cams.npy", folder / "fuzz_y.npy"
    for path, value in ((cam_path, cams), (target_path, targets)):
        if isinstance(value, bytes):
            path.write_bytes(value)
        else:
            np.save(path, value)
    out = folder / "fuzz_out"
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    extra = ["--nan-policy", policy, "--format", "json"] + (["--normalize"] if normalize else [])
    extra += ["--batch-size", batch] if batch is not None else []
    status, stdout, err = _run(capsys, setup, targets=target_path, cams=[cam_path], extra=extra, out=out)
    event(f"exit {status}")
    assert "Traceback" not in err + stdout
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".part")] if out.is_dir() else []
    assert not leftovers, leftovers  # no temporary file left behind
    if status == 2:
        assert err.count("\n") == 1 and err.startswith("camavg: error: "), err
        assert (sorted(p.name for p in out.iterdir()) if out.is_dir() else None) == before
        return
    assert status == 0, err
    (record,) = json.loads(stdout)
    assert json.loads((out / "results.json").read_text())[0] == record
    for metric in ("average_drop", "average_increase", "average_gain"):
        assert np.isfinite(record[metric]) and 0.0 <= record[metric] <= 100.0
    assert record["n"] + record["skipped"] == N and record["n"] >= 1
    cam_array, target_array = np.load(cam_path).astype(np.float64), np.load(target_path)
    if (record["skipped"] == 0 and not normalize and cam_array.shape == (N, SIZE, SIZE)
            and target_array.shape == (N,)):
        drop = _expected_drop(setup["model"], setup["x"], target_array.astype(np.int64), cam_array)
        assert record["average_drop"] == pytest.approx(drop, abs=1e-3)


def test_a_missing_framework_names_the_install_line(capsys, setup, monkeypatch):
    from camavg_tf.app import quiet

    def missing():
        raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

    monkeypatch.setattr(quiet, "import_tensorflow", missing)
    _one_error_line(*_run(capsys, setup), "tensorflow is not installed", "pip install 'camavg[tf,cli]'")


@pytest.mark.parametrize("argv, fragment", [([], "{demo,evaluate}"), (["demo", "--n-images", "x"], "--n-images"),
                                            (["demo", "--scorecam-max-n", "0"], "--scorecam-max-n"),
                                            (["evaluate", "--model", "m.keras"], "--inputs")])
def test_usage_errors_are_one_line_with_status_2(capsys, argv, fragment):
    status = main(argv)
    _one_error_line(status, *capsys.readouterr(), fragment, "--help")


def test_help_exits_0(capsys):
    assert main(["evaluate", "--help"]) == 0
    assert "tf_keras_vis.scorecam.Scorecam" in capsys.readouterr().out
