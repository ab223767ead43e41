"""report.png draws each method's mean Deletion and Insertion curve: the curve whose area is
the metric, averaged over the samples (checked against NumPy on drawn curves)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from camavg_cli.report import _mean_curves, plot_report  # noqa: E402
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


def test_the_report_with_curves_is_a_png(tmp_path):
    images = RNG.uniform(0, 1, (6, 8, 8, 3))
    cams = {name: RNG.uniform(0, 1, (6, 8, 8)) for name in CURVES}
    path = plot_report(tmp_path / "report.png", results_with_curves(), images, cams)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
