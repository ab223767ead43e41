"""The command line's comparison says which method is better, with the margin it is given, and
never prints an underflowed p-value as 0.

Oracles: the rule of ``better`` applied by hand to the printed rows (adjusted p below 0.05 and the
whole interval beyond the margin on the better side), and a table row written here by hand.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from camavg_cli import report  # noqa: E402
from test_cli import _evaluate_args, _run_in_process, files  # noqa: E402,F401  (files: the fixture)


def _expected_better(row, margin):
    if not row["p_adjusted"] < 0.05:
        return None
    sign = -1.0 if row["metric"] == "average_drop" else 1.0  # drop: lower is better
    a_low, a_high = sorted((sign * row["low"], sign * row["high"]))
    return row["a"] if a_low > margin else row["b"] if a_high < -margin else None


@pytest.mark.parametrize("margin", ["0", "100"])
def test_compare_names_the_better_method_with_the_margin_given(files, tmp_path, capsys, margin):  # noqa: F811 - the fixture imported above
    args = _evaluate_args(files, "--compare", "--margin", margin, "--format", "json", "--quiet", "--no-plot",
                          "--out", str(tmp_path / "out"))
    status, out, err = _run_in_process(capsys, *args)
    assert status == 0, err
    rows = json.loads(out)["comparisons"]
    assert len(rows) == 3
    for row in rows:
        assert row["margin"] == float(margin)
        assert row["better"] == _expected_better(row, float(margin)), row
    if margin == "100":  # no interval of a percentage reaches 100 points beyond 0
        assert all(row["better"] is None for row in rows)


def test_a_negative_margin_is_refused_in_one_line(files, tmp_path, capsys):  # noqa: F811 - the fixture imported above
    args = _evaluate_args(files, "--compare", "--margin", "-1", "--quiet", "--no-plot", "--out", str(tmp_path / "o"))
    status, out, err = _run_in_process(capsys, *args)
    assert status == 2 and "margin" in err and "Traceback" not in err


def test_an_underflowed_p_value_prints_as_below_1e_300():
    row = {"a": "x", "b": "y", "difference": -50.0, "low": -60.0, "high": -40.0, "p_value": 0.0, "p_adjusted": 0.0,
           "better": "x"}
    text = report.format_comparison_table([{**row, "metric": metric}
                                           for metric in ("average_drop", "average_increase", "average_gain")])
    assert "p< 1e-300" in text and "p=0 " not in text and "x better" in text


@pytest.mark.slow
def test_compare_on_deletion_and_insertion_gives_the_difference_of_the_results(files, tmp_path, capsys):  # noqa: F811 - the fixture imported above
    """Curve metrics are compared on their per-sample terms: the difference is method a's
    value minus method b's, each metric with its own margin (0.005 for a fraction)."""
    args = _evaluate_args(files, "--compare", "--metrics", "average_drop,deletion,insertion", "--format", "json",
                          "--quiet", "--no-plot", "--out", str(tmp_path / "out"))
    status, out, err = _run_in_process(capsys, *args)
    assert status == 0, err
    printed = json.loads(out)
    values = {result["method"]: result for result in printed["results"]}
    rows = printed["comparisons"]
    assert sorted({row["metric"] for row in rows}) == ["average_drop", "deletion", "insertion"]
    for row in rows:
        expected = values[row["a"]][row["metric"]] - values[row["b"]][row["metric"]]
        assert abs(row["difference"] - expected) < 1e-9, row
        assert row["margin"] == (0.5 if row["metric"] == "average_drop" else 0.005)
        assert row["low"] <= row["difference"] <= row["high"]
