"""What ``camavg`` writes: a whole --out folder with no stale file, and CSV no spreadsheet runs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from camavg_tf.app.loading import CommandError
from camavg_tf.app.output import check_out, csv_text, escape_cell, fresh_folder

# Keras' own model.save trips NumPy 2's __array__ deprecation inside Keras; not camavg's, not the user's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.mark.parametrize("text", ["=1+1", "+1", "-cmd", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\")"])
def test_formula_like_text_gets_a_leading_quote(text):
    assert escape_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["gradcam", "a=b", "", 0.5, -2.25, 3, -7])
def test_other_text_and_every_number_stay_as_they_are(value):
    assert escape_cell(value) == value


def test_csv_numbers_stay_numbers_and_text_is_quoted():
    text = csv_text(["method", "drop", "n"], [{"method": "-1", "drop": -0.5, "n": 3}])
    assert text.splitlines() == ['"method","drop","n"', "\"'-1\",-0.5,3"]
    # Read back as a spreadsheet would with quoted text: numbers come back as numbers.
    (row,) = list(csv.reader(io.StringIO(text), quoting=csv.QUOTE_NONNUMERIC))[1:]
    assert row == ["'-1", -0.5, 3.0]


def test_fresh_folder_replaces_the_old_run_whole(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "comparisons.json").write_text("old")
    with fresh_folder(check_out(str(out))) as staging:
        (staging / "results.json").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging or old folder left


def test_a_failed_run_leaves_the_old_folder_as_it_was(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "results.json").write_text("old")
    with pytest.raises(RuntimeError):
        with fresh_folder(check_out(str(out))) as staging:
            (staging / "results.json").write_text("half")
            raise RuntimeError("stopped")
    assert (out / "results.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_check_out_refuses_a_file_and_a_folder_of_the_users_files(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CommandError, match="is a file"):
        check_out(str(tmp_path / "a_file"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.npy").write_text("x")
    with pytest.raises(CommandError, match="data.npy"):
        check_out(str(tmp_path / "mine"))


def test_a_second_run_leaves_no_comparisons_and_escapes_a_formula_name(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    pytest.importorskip("tf_keras_vis")
    from camavg_tf.app.cli import main

    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 4, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 1, name="conv")(inputs))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)).save(tmp_path / "m.keras")
    rng = np.random.default_rng(2)
    np.save(tmp_path / "x.npy", rng.random((3, 4, 4, 3)).astype(np.float32))
    formula = tmp_path / "=HYPERLINK(1).npy"
    np.save(formula, rng.random((3, 4, 4)).astype(np.float32))
    np.save(tmp_path / "plain.npy", rng.random((3, 4, 4)).astype(np.float32))
    out = tmp_path / "out"
    base = ["evaluate", "--model", str(tmp_path / "m.keras"), "--inputs", str(tmp_path / "x.npy"), "--top1",
            "--cams", str(formula), str(tmp_path / "plain.npy"), "--quiet", "--no-plot", "--out", str(out)]
    assert main(base + ["--compare"]) == 0
    assert (out / "comparisons.json").exists() and (out / "comparisons.csv").exists()
    capsys.readouterr()
    assert main(base + ["--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json"]
    rows = list(csv.reader(io.StringIO((out / "results.csv").read_text()), quoting=csv.QUOTE_NONNUMERIC))
    assert rows[1][0] == "'" + records[0]["method"] and rows[1][0].startswith("'=HYPERLINK")
    assert isinstance(rows[1][1], float) and rows[1][1] == pytest.approx(records[0]["average_drop"])

