"""The tests' one NumPy reference of the equations (DESIGN.md), written out independently of
camavg's code, with the one eps. Test files import it instead of each writing its own."""

from __future__ import annotations

import numpy as np

#: DESIGN.md's eps (Keras' epsilon)
EPS = 1e-7


def reference_terms(y_c, o_c) -> dict[str, np.ndarray]:
    """Per-sample terms in float64: drop, increase, gain."""
    y = np.asarray(y_c, dtype=np.float64)
    o = np.asarray(o_c, dtype=np.float64)
    return {
        "average_drop": np.maximum(y - o, 0.0) / (y + EPS),
        "average_increase": (y < o).astype(np.float64),
        "average_gain": np.maximum(o - y, 0.0) / (1.0 - y + EPS),
    }


def reference_metrics(y_c, o_c) -> dict[str, float]:
    """The three averages in percent."""
    return {name: 100.0 * float(np.mean(terms)) for name, terms in reference_terms(y_c, o_c).items()}
