"""What ``camavg`` writes: its own files in --out and nothing else, and CSV no spreadsheet runs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from camavg_cli.loading import CommandError
from camavg_cli.output import MANIFEST, check_out, csv_text, escape_cell, write_outputs

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


def _snapshot(folder):
    """Every path under ``folder`` with its kind and bytes: what 'left as it was' compares."""
    return {str(path.relative_to(folder)): (path.read_bytes() if path.is_file() and not path.is_symlink() else
                                            "link" if path.is_symlink() else "folder")
            for path in sorted(folder.rglob("*"))}


def _manifest_digests(out):
    return json.loads((out / MANIFEST).read_text())["files"]


def test_outputs_go_beside_the_users_files_and_replace_only_camavgs_own(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    write_outputs(check_out(str(out), ["results.json", "comparisons.json"]), str(out),
                  {"results.json": b"first", "comparisons.json": b"pairs"})
    assert _manifest_digests(out) == {"results.json": [hashlib.sha256(b"first").hexdigest()],
                                      "comparisons.json": [hashlib.sha256(b"pairs").hexdigest()]}
    # A second run without --compare replaces results.json and removes its own comparisons.json.
    write_outputs(check_out(str(out), ["results.json"]), str(out), {"results.json": b"second"})
    assert _snapshot(out) == {"thesis.tex": b"precious", "results.json": b"second",
                              MANIFEST: (out / MANIFEST).read_bytes()}
    assert _manifest_digests(out) == {"results.json": [hashlib.sha256(b"second").hexdigest()]}


def test_an_output_the_user_changed_is_neither_replaced_nor_removed(tmp_path):
    out = tmp_path / "report"
    write_outputs(check_out(str(out), ["results.csv", "comparisons.csv"]), str(out),
                  {"results.csv": b"a,b\n", "comparisons.csv": b"c\n"})
    (out / "comparisons.csv").write_text("my notes")  # now the user's: a run that does not write it keeps it
    write_outputs(check_out(str(out), ["results.csv"]), str(out), {"results.csv": b"a,b\n1,2\n"})
    assert (out / "comparisons.csv").read_text() == "my notes"
    (out / "results.csv").write_text("edited by hand")
    before = _snapshot(out)
    with pytest.raises(CommandError, match=r"results\.csv is not a file camavg wrote .*another --out, or move or remove it"):
        check_out(str(out), ["results.csv"])
    with pytest.raises(CommandError, match=r"results\.csv is not a file camavg wrote"):
        write_outputs(out, str(out), {"results.csv": b"new"})  # checked again at write time
    assert _snapshot(out) == before


def test_a_folder_a_link_or_a_foreign_manifest_where_an_output_goes_is_refused(tmp_path):
    out = tmp_path / "prev"
    (out / "report.png").mkdir(parents=True)
    (out / "report.png" / "figure1.png").write_bytes(b"the user's")
    (tmp_path / "elsewhere.json").write_text("{}")
    (out / "results.json").symlink_to(tmp_path / "elsewhere.json")
    before = _snapshot(tmp_path)
    with pytest.raises(CommandError, match=r"report\.png is a folder.*another --out, or move that folder away"):
        check_out(str(out), ["report.png"])
    with pytest.raises(CommandError, match=r"results\.json is not a file camavg wrote"):
        check_out(str(out), ["results.json"])
    check_out(str(out), ["results.csv"])  # paths this run does not write are none of its business
    for manifest in ("not json", json.dumps({"kind": "camavg outputs", "files": {"../elsewhere.json": ["x"]}})):
        (out / MANIFEST).write_text(manifest)
        with pytest.raises(CommandError, match=r"camavg-manifest\.json is not the list of outputs"):
            check_out(str(out), ["results.csv"])
        (out / MANIFEST).unlink()
    assert _snapshot(tmp_path) == before


def test_out_dot_is_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.npy").write_bytes(b"data")
    written = write_outputs(check_out(".", ["results.json"]), ".", {"results.json": b"{}"})
    assert [path.name for path in written] == ["results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "results.json", "x.npy"]
    with pytest.raises(CommandError, match=r"--out \.: report\.png is a folder"):
        (tmp_path / "report.png").mkdir()
        check_out(".", ["results.json", "report.png"])


def test_files_get_the_mode_a_plain_open_gives(tmp_path):
    mask = os.umask(0o027)
    try:
        write_outputs(check_out(str(tmp_path), ["results.json"]), str(tmp_path), {"results.json": b"{}"})
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o640


def test_an_interrupted_write_leaves_whole_files_that_the_next_run_owns(tmp_path, monkeypatch):
    out = tmp_path / "report"
    write_outputs(check_out(str(out), ["results.json", "results.csv"]), str(out),
                  {"results.json": b"old json", "results.csv": b"old csv"})
    real_replace, calls = os.replace, []

    def interrupted(source, target):
        calls.append(Path(target).name)
        if Path(target).name == "results.csv":  # after the manifest and results.json
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(out, str(out), {"results.json": b"new json", "results.csv": b"new csv"})
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls == [MANIFEST, "results.json", "results.csv"]
    assert _snapshot(out) == {MANIFEST: (out / MANIFEST).read_bytes(), "results.csv": b"old csv",
                              "results.json": b"new json"}  # whole files, no temporary one left
    write_outputs(check_out(str(out), ["results.json", "results.csv"]), str(out),
                  {"results.json": b"next json", "results.csv": b"next csv"})
    assert (out / "results.csv").read_bytes() == b"next csv"


def test_check_out_refuses_a_file(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CommandError, match="is a file"):
        check_out(str(tmp_path / "a_file"), ["results.json"])


def test_a_second_run_leaves_no_comparisons_and_escapes_a_formula_name(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    pytest.importorskip("tf_keras_vis")
    from camavg_cli.cli import main

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
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "results.csv", "results.json"]
    rows = list(csv.reader(io.StringIO((out / "results.csv").read_text()), quoting=csv.QUOTE_NONNUMERIC))
    assert rows[1][0] == "'" + records[0]["method"] and rows[1][0].startswith("'=HYPERLINK")
    assert isinstance(rows[1][1], float) and rows[1][1] == pytest.approx(records[0]["average_drop"])



# ----------------------------------------------------------------------------- the command's --out
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny saved softmax model, inputs and two CAM sets, in a folder of their own."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("tf_keras_vis")
    folder = tmp_path_factory.mktemp("cli-out")
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4, 4, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 1, name="conv")(inputs))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)).save(folder / "m.keras")
    rng = np.random.default_rng(5)
    np.save(folder / "x.npy", rng.random((3, 4, 4, 3)).astype(np.float32))
    for name in ("alpha", "beta"):
        np.save(folder / f"{name}.npy", rng.random((3, 4, 4)).astype(np.float32))
    return folder


def _command(folder, out, *extra):
    return ["evaluate", "--model", str(folder / "m.keras"), "--inputs", str(folder / "x.npy"), "--top1",
            "--cams", str(folder / "alpha.npy"), str(folder / "beta.npy"), "--quiet", "--out", out, *extra]


def test_out_dot_writes_into_the_current_folder_and_runs_again(saved, tmp_path, monkeypatch, capsys):
    from camavg_cli.cli import main

    monkeypatch.chdir(tmp_path)
    # eb5fb28: all the work, then "internal error: OSError [Errno 16]", the results in a hidden ..new-XXXX folder.
    assert main(_command(saved, ".", "--compare", "--no-plot")) == 0, capsys.readouterr().err
    (tmp_path / "thesis.tex").write_text("precious")
    # The second run replaces the first one's files, beside the user's own.
    assert main(_command(saved, ".", "--compare", "--no-plot")) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MANIFEST, "thesis.tex", "results.json", "results.csv", "comparisons.json", "comparisons.csv", "conclusion.txt"])
    assert (tmp_path / "thesis.tex").read_text() == "precious"
    assert [record["method"] for record in json.loads((tmp_path / "results.json").read_text())] == ["alpha", "beta"]


def test_out_with_a_folder_where_report_png_goes_stops_before_any_work(saved, tmp_path, monkeypatch, capsys):
    from camavg_cli import cli

    prev = tmp_path / "prev"
    (prev / "report.png").mkdir(parents=True)
    (prev / "report.png" / "figure1.png").write_bytes(b"the user's own")

    def no_work(*args):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(cli, "_load_model", no_work)
    for extra, name in (((), "report.png"), (("--no-plot",), "results.json")):
        if name == "results.json":  # with report.png out of the way (--no-plot), the next path
            (prev / "results.json").write_text("the user's own")
        before = _snapshot(tmp_path)
        status = cli.main(_command(saved, str(prev), *extra))
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and err.startswith("camavg: error: --out "), err
        assert str(prev / name) in err and "another --out" in err
        assert _snapshot(tmp_path) == before
