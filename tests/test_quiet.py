"""Quiet output: TensorFlow's known start-up lines are dropped, nothing else is.

The unit tests feed bytes to the filter; the subprocess tests run the real command and read its
standard error, where TensorFlow 2.21 writes absl/oneDNN/CUDA lines at import on a machine
without a GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from camavg_tf.app.quiet import filter_lines, filtered_stderr, is_known_line

# Keras' own model.save trips NumPy 2's __array__ deprecation inside Keras; not camavg's, not the user's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

ABSL = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = (b"I0000 00:00:1796404085.095724    4225 port.cc:153] oneDNN custom operations are on. You may see "
          b"slightly different numerical results due to floating-point round-off errors.")
CUINIT = b"E0000 00:00:1796404110.612480    4418 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error"


def test_known_lines_go_and_everything_else_stays_in_order():
    data = b"first\n" + ABSL + b"\n" + ONEDNN + b"\nsecond\r\n" + CUINIT + b"\nno newline at the end"
    assert filter_lines(data, 3) == b"first\nsecond\r\nno newline at the end"


def test_the_users_level_decides_which_known_lines_go():
    # TF_CPP_MIN_LOG_LEVEL semantics: 1 hides info, 2 hides warnings too, 0 hides nothing.
    assert is_known_line(ONEDNN, 1) and not is_known_line(ABSL, 1) and not is_known_line(CUINIT, 1)
    assert is_known_line(ABSL, 2) and not is_known_line(CUINIT, 2)
    assert not any(is_known_line(line, 0) for line in (ABSL, ONEDNN, CUINIT))


def test_look_alikes_are_kept():
    assert not is_known_line(b"Traceback (most recent call last):", 3)
    assert not is_known_line(b"E0000 00:00:1.0 1 my_code.cc:1] failed call to cuInit", 3)
    assert not is_known_line(b"camavg: error: oneDNN custom operations are on.", 3)


def test_filtered_stderr_drops_known_lines_written_to_descriptor_2(capfd):
    with filtered_stderr(3):
        os.write(2, ABSL + b"\nkept line\n")
        os.write(2, b"partial ")
        os.write(2, b"line\n")
    assert capfd.readouterr().err == "kept line\npartial line\n"


def _run(args, env_level):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # a machine without GPU, where TensorFlow prints the most start-up lines
    if env_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = env_level
    return subprocess.run([sys.executable, "-m", "camavg_cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory):
    keras = pytest.importorskip("keras")
    import numpy as np

    folder = tmp_path_factory.mktemp("quiet")
    inputs = keras.Input((4, 4, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(1, 1, name="conv")(inputs))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)).save(folder / "m.keras")
    np.save(folder / "x.npy", np.ones((2, 4, 4, 1), np.float32))
    np.save(folder / "c.npy", np.full((2, 4, 4), 0.5, np.float32))
    return folder


@pytest.mark.slow
def test_the_command_prints_nothing_but_its_notes(saved_files):
    folder = saved_files
    finished = _run(["evaluate", "--model", str(folder / "m.keras"), "--inputs", str(folder / "x.npy"), "--top1",
                     "--cams", str(folder / "c.npy"), "--no-plot", "--out", str(folder / "out")], None)
    assert finished.returncode == 0, finished.stderr
    # Without the progress bar's redraws, standard error holds camavg's own note and nothing else.
    lines = [line for line in finished.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert lines and all("step" in line or line.startswith("evaluating") or line.startswith("wrote ")
                         or line.startswith("[") for line in lines), finished.stderr
    for noise in ("absl", "oneDNN", "cuda", "cuInit", "Warning", "WARNING"):
        assert noise not in finished.stderr, finished.stderr


@pytest.mark.slow
def test_a_users_own_level_0_shows_tensorflows_lines(saved_files):
    folder = saved_files
    finished = _run(["evaluate", "--model", str(folder / "m.keras"), "--inputs", str(folder / "x.npy"), "--top1",
                     "--cams", str(folder / "c.npy"), "--no-plot", "--quiet", "--out", str(folder / "out0")], "0")
    assert finished.returncode == 0, finished.stderr
    # What TensorFlow prints at level 0 depends on the machine; camavg must have hidden none of it.
    assert "absl::InitializeLog" in finished.stderr or "cpu_feature_guard" in finished.stderr
