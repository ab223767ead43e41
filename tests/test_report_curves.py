"""report.png draws each method's mean Deletion and Insertion curve (the curve whose area is
the metric) and its mean ROAD curves (MoRF and LeRF, against ROAD's fractions), averaged over
the samples (checked against NumPy on drawn curves)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from camavg_cli.report import _mean_curves, _metric_bars, plot_report  # noqa: E402
from camavg_core import Result  # noqa: E402

RNG = np.random.default_rng(4)
CURVES = {"a": RNG.uniform(0, 1, (6, 11)), "b": RNG.uniform(0, 1, (6, 11))}


def results_with_curves() -> dict:
    return {
        name: Result(values={"deletion": float(np.trapezoid(c, dx=0.1, axis=1).mean())}, n=6,
                     curves={"deletion": (c,)})
        for name, c in CURVES.items()
    }


def test_each_methods_mean_curve_is_drawn_against_the_fractions():
    figure = Figure()
    _mean_curves(figure.subfigures(1, 1), results_with_curves(), ["deletion"])
    (axes,) = figure.axes
    lines = {line.get_label().split(" ")[0]: line for line in axes.get_lines()}
    assert sorted(lines) == ["a", "b"]
    for name, curves in CURVES.items():
        np.testing.assert_allclose(lines[name].get_xdata(), np.linspace(0, 1, 11))
        np.testing.assert_allclose(lines[name].get_ydata(), curves.mean(axis=0))


def test_roads_morf_and_lerf_curves_are_drawn_against_its_fractions_in_one_colour():
    from camavg_core.imputation import DEFAULT_FRACTIONS

    morf = {name: RNG.uniform(0, 1, (6, 9)) for name in "ab"}
    lerf = {name: RNG.uniform(0, 1, (6, 9)) for name in "ab"}
    results = {name: Result(values={"road": 0.1}, n=6, curves={"road": (morf[name], lerf[name])}) for name in "ab"}
    figure = Figure()
    _mean_curves(figure.subfigures(1, 1), results, ["road"])
    (axes,) = figure.axes
    lines = axes.get_lines()
    assert len(lines) == 4
    for (first, second), name in zip((lines[:2], lines[2:]), "ab"):
        assert first.get_label() == f"{name} (0.100)" and first.get_linestyle() == "-"
        assert second.get_linestyle() == "--" and second.get_color() == first.get_color()
        np.testing.assert_allclose(first.get_xdata(), DEFAULT_FRACTIONS)
        np.testing.assert_allclose(first.get_ydata(), morf[name].mean(axis=0))
        np.testing.assert_allclose(second.get_ydata(), lerf[name].mean(axis=0))
    assert lines[0].get_color() != lines[2].get_color()
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["a (0.100)", "b (0.100)"]


def test_the_report_with_curves_is_a_png(tmp_path):
    images = RNG.uniform(0, 1, (6, 8, 8, 3))
    cams = {name: RNG.uniform(0, 1, (6, 8, 8)) for name in CURVES}
    path = plot_report(tmp_path / "report.png", results_with_curves(), images, cams)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_negative_values_and_whiskers_are_inside_the_bars_axes():
    """ROAD and MuFidelity can be negative: the bars' axis starts at the lowest whisker (it
    started at 0, which hid a negative bar and showed only its label)."""
    values = {"a": 0.2, "reference:inverse": -0.24}
    results = {name: Result(values={"road": v}, n=6, ci={"road": (v - 0.03, v + 0.05)}) for name, v in values.items()}
    axes = Figure().subplots()
    _metric_bars(axes, results, "road")
    low, high = axes.get_xlim()
    assert low <= -0.27 and 0.25 <= high <= 0.5 + 1e-12
    widths = [patch.get_width() for patch in axes.patches]
    np.testing.assert_allclose(widths, [0.2, -0.24])
    positive = {"a": 0.2, "b": 0.3}
    axes = Figure().subplots()
    _metric_bars(axes, {n: Result(values={"deletion": v}, n=6) for n, v in positive.items()}, "deletion")
    assert axes.get_xlim() == (0.0, 1.0)


def test_bar_labels_read_as_the_table_does():
    """Each bar's label has its metric's decimals (3 for a fraction, 2 for percent, 24.73
    not 24.7), and a value that is not 0 but would round to it keeps its sign and one digit:
    ROAD -0.0012 is -0.001 and -0.0004 is -0.0004, where the report used to print -0.00."""
    for metric, values, labels in (("road", [0.2071, -0.0012, -0.0004], ["0.207", "-0.001", "-0.0004"]),
                                   ("average_drop", [24.734, 6.9, 0.0], ["24.73", "6.90", "0.00"])):
        axes = Figure().subplots()
        _metric_bars(axes, {f"m{k}": Result(values={metric: v}, n=6) for k, v in enumerate(values)}, metric)
        assert [text.get_text().strip() for text in axes.texts] == labels


def test_the_curves_x_comes_from_the_metrics_own_description():
    """Passed descriptions set the x: ROAD's own fractions, Deletion's K + 1 steps up to its
    max_fraction; a curve its description does not account for is drawn against the step
    index, never against guessed fractions."""
    from camavg_core.metrics import deletion_metric, road_metric

    road = road_metric(fractions=(0.05, 0.25, 0.45))
    deletion = deletion_metric(steps=4, max_fraction=0.5)
    curves = {"road": (RNG.uniform(0, 1, (5, 3)), RNG.uniform(0, 1, (5, 3))), "deletion": (RNG.uniform(0, 1, (5, 5)),)}
    results = {"a": Result(values={"road": 0.1, "deletion": 0.4}, n=5, curves=curves)}
    figure = Figure()
    _mean_curves(figure.subfigures(1, 1), results, ["road", "deletion"], (road, deletion))
    road_axes, deletion_axes = figure.axes
    for line in road_axes.get_lines():
        np.testing.assert_allclose(line.get_xdata(), [0.05, 0.25, 0.45])
    np.testing.assert_allclose(deletion_axes.get_lines()[0].get_xdata(), [0.0, 0.125, 0.25, 0.375, 0.5])
    assert "fraction" in road_axes.get_xlabel() and "fraction" in deletion_axes.get_xlabel()
    figure = Figure()
    _mean_curves(figure.subfigures(1, 1), results, ["road"])  # the registered ROAD has 9 fractions
    (axes,) = figure.axes
    np.testing.assert_allclose(axes.get_lines()[0].get_xdata(), [0, 1, 2])
    assert axes.get_xlabel() == "step"
