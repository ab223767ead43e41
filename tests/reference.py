"""The tests' one NumPy reference of the equations, written out independently of camavg's code,
with the one eps. Test files import it instead of each writing its own.

The equations are those of README.md ("What it measures"), for N samples with scores Y_i on the
images and O_i on the masked images, and eps = 1e-7::

    drop_i     = max(0, Y_i - O_i) / (Y_i + eps)        Average Drop     = 100 * mean(drop_i)
    increase_i = 1 if Y_i < O_i else 0                  Average Increase = 100 * mean(increase_i)
    gain_i     = max(0, O_i - Y_i) / (1 - Y_i + eps)    Average Gain     = 100 * mean(gain_i)
"""

from __future__ import annotations

import numpy as np

#: the README's eps (Keras' epsilon)
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
