"""The command line apart from every framework: importing it imports none, and a second
framework (here one made of NumPy alone, tests/numpy_framework.py) gets the same command.

Runs with NumPy alone: nothing here imports TensorFlow, JAX or PyTorch. The probes that check
``sys.modules`` run in a fresh interpreter, since this test process may have imported them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from camavg_cli.cli import main
from camavg_cli.frameworks import FRAMEWORKS
from reference import reference_metrics

TESTS = Path(__file__).resolve().parent
FRAMEWORK_MODULES = ("tensorflow", "keras", "tf_keras", "tf_keras_vis", "jax", "jaxlib", "torch")


def run_fresh(code: str, *argv: str) -> dict:
    """Run ``code`` in a new interpreter; it prints JSON as its last line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-c", f"MODULES = {FRAMEWORK_MODULES!r}\n{textwrap.dedent(code)}", *argv],
                               capture_output=True, text=True, timeout=120, check=False, env=env, cwd=TESTS.parent)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_importing_the_command_line_imports_no_framework_and_no_adapter():
    loaded = run_fresh("""
        import json, sys
        import camavg_cli
        from camavg_cli import cli, conclusion, frameworks, loading, output, progress, report
        prefixes = MODULES + ("camavg_tf", "camavg_jax", "camavg_torch", "matplotlib")
        print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in prefixes)))
        """)
    assert loaded == []


def test_help_and_argument_errors_import_no_framework():
    statuses = run_fresh("""
        import contextlib, io, json, sys
        from camavg_cli.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            statuses = [main(["evaluate", "--help"]), main(["demo", "--n-images", "x"]), main(["evaluate", "--framework", "x"])]
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in MODULES)
        print(json.dumps({"statuses": statuses, "loaded": loaded}))
        """)
    assert statuses == {"statuses": [0, 2, 2], "loaded": []}


@pytest.fixture
def saved(tmp_path):
    """Weights (C=3, K=4), inputs (5, 6, 6, 3), targets and two CAM sets, as files."""
    rng = np.random.default_rng(7)
    # float32 inputs and CAMs, as the command reads them
    files = {"weights": rng.normal(size=(3, 4)) * 3, "x": rng.random((5, 6, 6, 3), np.float32), "y": np.array([0, 1, 2, 3, 0]),
             "alpha": rng.random((5, 6, 6), np.float32), "beta": rng.random((5, 6, 6), np.float32) ** 3}
    np.savez(tmp_path / "model.npz", weights=files["weights"])
    for name in ("x", "y", "alpha", "beta"):
        np.save(tmp_path / f"{name}.npy", files[name])
    return tmp_path, files


def _expected(files: dict, cams: np.ndarray) -> dict[str, float]:
    """The three averages worked out here: softmax of the channel means, the CAM over the channels."""
    def probabilities(images):
        logits = images.mean(axis=(1, 2)) @ files["weights"]
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    rows = np.arange(len(files["y"]))
    y_c = probabilities(files["x"])[rows, files["y"]]
    o_c = probabilities(files["x"] * cams[..., None])[rows, files["y"]]
    return reference_metrics(y_c, o_c)


@pytest.mark.slow
def test_a_second_framework_gets_the_same_command_without_tensorflow(saved):
    folder, files = saved
    argv = ["evaluate", "--framework", "numpy", "--model", str(folder / "model.npz"), "--inputs", str(folder / "x.npy"),
            "--targets", str(folder / "y.npy"), "--cams", str(folder / "alpha.npy"), str(folder / "beta.npy"),
            "--compare", "--no-plot", "--quiet", "--format", "json", "--out", str(folder / "out")]
    ran = run_fresh("""
        import contextlib, io, json, sys
        from camavg_cli import frameworks
        from camavg_cli.cli import main
        frameworks.FRAMEWORKS["numpy"] = ("numpy_framework", "pip install numpy")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = main(sys.argv[1:])
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in MODULES)
        print(json.dumps({"status": status, "loaded": loaded, "printed": json.loads(printed.getvalue())}))
        """, *argv)
    assert ran["status"] == 0 and ran["loaded"] == []
    records = {record["method"]: record for record in ran["printed"]["results"]}
    for method in ("alpha", "beta"):
        for metric, value in _expected(files, files[method]).items():
            assert records[method][metric] == pytest.approx(value, abs=1e-4), (method, metric)  # masked in float32
    rows = ran["printed"]["comparisons"]
    assert sorted((row["a"], row["b"], row["metric"]) for row in rows) == [
        ("alpha", "beta", metric) for metric in ("average_drop", "average_gain", "average_increase")]
    for row in rows:
        assert row["difference"] == pytest.approx(records["alpha"][row["metric"]] - records["beta"][row["metric"]], abs=1e-9)
    written = sorted(path.name for path in (folder / "out").iterdir() if not path.name.startswith("."))
    assert written == ["comparisons.csv", "comparisons.json", "conclusion.txt", "results.csv", "results.json"]


@pytest.fixture
def numpy_framework(monkeypatch):
    monkeypatch.setitem(FRAMEWORKS, "numpy", ("numpy_framework", "pip install numpy"))


def test_a_frameworks_recipes_make_the_maps(saved, numpy_framework, capsys):
    folder, files = saved
    status = main(["evaluate", "--framework", "numpy", "--model", str(folder / "model.npz"), "--inputs", str(folder / "x.npy"),
                   "--targets", str(folder / "y.npy"), "--method", "ones", "--layer", "any", "--no-plot", "--quiet",
                   "--format", "json", "--out", str(folder / "out")])
    (record,) = json.loads(capsys.readouterr().out)
    assert status == 0 and record["method"] == "ones" and record["recipe"] == "a map of ones"
    # A map of ones keeps every input as it is: O_c = Y_c.
    assert (record["average_drop"], record["average_increase"], record["average_gain"]) == (0.0, 0.0, 0.0)


def test_metrics_chooses_the_metrics_and_everything_follows(saved, numpy_framework, capsys):
    folder, files = saved
    status = main(["evaluate", "--framework", "numpy", "--model", str(folder / "model.npz"), "--inputs", str(folder / "x.npy"),
                   "--targets", str(folder / "y.npy"), "--cams", str(folder / "alpha.npy"), str(folder / "beta.npy"),
                   "--metrics", "average_gain", "--compare", "--no-plot", "--quiet", "--format", "json",
                   "--out", str(folder / "out")])
    printed = json.loads(capsys.readouterr().out)
    assert status == 0
    record = printed["results"][0]
    assert record["average_gain"] == pytest.approx(_expected(files, files["alpha"])["average_gain"], abs=1e-4)
    assert "average_drop" not in record and "average_increase" not in record
    assert [row["metric"] for row in printed["comparisons"]] == ["average_gain"]
    header = (folder / "out" / "results.csv").read_text().splitlines()[0]
    assert "average_gain" in header and "average_drop" not in header
    status = main(["evaluate", "--framework", "numpy", "--model", str(folder / "model.npz"), "--inputs", str(folder / "x.npy"),
                   "--targets", str(folder / "y.npy"), "--cams", str(folder / "alpha.npy"), "--metrics", "average_dorp"])
    _one_error_line(status, capsys.readouterr().err, "--metrics", "average_dorp", "average_drop")


def _one_error_line(status: int, err: str, *fragments: str) -> None:
    assert status == 2 and err.startswith("camavg: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_a_framework_without_a_demo_says_so(numpy_framework, tmp_path, capsys):
    status = main(["demo", "--framework", "numpy", "--quiet", "--out", str(tmp_path / "out")])
    _one_error_line(status, capsys.readouterr().err, "--framework numpy has no demo", "--framework tf")
    assert not (tmp_path / "out").exists()


def test_an_unknown_or_missing_framework_is_one_line(monkeypatch, capsys):
    _one_error_line(main(["evaluate", "--framework", "caffe"]), capsys.readouterr().err, "--framework", "'caffe'", "tf")
    monkeypatch.setitem(FRAMEWORKS, "torch", ("camavg_no_such_adapter.app.framework", "pip install 'camavg[torch]'"))
    _one_error_line(main(["evaluate", "--framework", "torch"]), capsys.readouterr().err,
                    "--framework torch", "camavg_no_such_adapter is not installed", "pip install 'camavg[torch]'")


@pytest.mark.parametrize("option, needed", [
    (["--baseline", "alpha"], "--compare"),
    (["--margin", "0"], "--compare"),
    (["--layer", "any"], "--method"),
    (["--no-replace-to-linear"], "--method"),
    (["--scorecam-max-n", "4"], "--method"),
], ids=lambda value: value[0] if isinstance(value, list) else value)
def test_an_option_without_the_option_it_works_with_is_refused_before_any_work(saved, numpy_framework, capsys,
                                                                                option, needed):
    folder, _ = saved
    status = main(["evaluate", "--framework", "numpy", "--model", str(folder / "model.npz"), "--inputs", str(folder / "x.npy"),
                   "--targets", str(folder / "y.npy"), "--cams", str(folder / "alpha.npy"), str(folder / "beta.npy"),
                   *option, "--no-plot", "--quiet", "--out", str(folder / "out")])
    _one_error_line(status, capsys.readouterr().err, option[0], f"without {needed}", f"add {needed}, or leave {option[0]} out")
    assert not (folder / "out").exists()


def test_the_same_options_beside_the_option_they_work_with_run(saved, numpy_framework, capsys):
    folder, files = saved
    common = ["evaluate", "--framework", "numpy", "--model", str(folder / "model.npz"), "--inputs", str(folder / "x.npy"),
              "--targets", str(folder / "y.npy"), "--no-plot", "--quiet", "--format", "json"]
    status = main([*common, "--method", "ones", "--layer", "any", "--no-replace-to-linear", "--scorecam-max-n", "4",
                   "--out", str(folder / "made")])
    (record,) = json.loads(capsys.readouterr().out)
    assert status == 0 and record["average_drop"] == 0.0  # a map of ones keeps every input
    status = main([*common, "--cams", str(folder / "alpha.npy"), str(folder / "beta.npy"), "--compare",
                   "--baseline", "beta", "--margin", "0", "--out", str(folder / "compared")])
    rows = json.loads(capsys.readouterr().out)["comparisons"]
    assert status == 0 and {(row["a"], row["b"], row["margin"]) for row in rows} == {("alpha", "beta", 0.0)}
    drops = {name: _expected(files, files[name])["average_drop"] for name in ("alpha", "beta")}
    (drop,) = [row for row in rows if row["metric"] == "average_drop"]
    assert drop["difference"] == pytest.approx(drops["alpha"] - drops["beta"], abs=1e-4)


def test_the_demo_refuses_a_baseline_without_compare_but_takes_a_margin(numpy_framework, tmp_path, capsys):
    status = main(["demo", "--framework", "numpy", "--baseline", "gradcam", "--quiet", "--out", str(tmp_path / "out")])
    _one_error_line(status, capsys.readouterr().err, "--baseline", "add --compare, or leave --baseline out")
    # the demo's conclusion reads --margin without --compare: past the option check, to the demo's own error
    status = main(["demo", "--framework", "numpy", "--margin", "1", "--quiet", "--out", str(tmp_path / "out")])
    _one_error_line(status, capsys.readouterr().err, "--framework numpy has no demo")
