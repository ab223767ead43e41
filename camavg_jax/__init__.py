"""camavg_jax: Average Drop, Average Increase and Average Gain for models that live in JAX.

The JAX backend of camavg's array protocol (:mod:`camavg_jax.backend`, loaded by
``camavg_core`` when it first sees a ``jax.Array``) and ``AveragesCam`` for any jittable
``apply_fn`` (a Flax or Equinox model with its parameters bound, or a plain function).

>>> import jax.numpy as jnp
>>> from camavg_jax import avg_drop
>>> avg_drop(jnp.array([0.8, 0.5]), jnp.array([0.2, 0.6]))  # (0.6 / 0.8 + 0) / 2
37.5...
"""

from camavg_core import Result, avg_drop, avg_gain, avg_increase, summarize
from camavg_jax.averages import AveragesCam
from camavg_jax.backend import JaxBackend
from camavg_jax.streaming import evaluate_dataset

__all__ = ["AveragesCam", "JaxBackend", "Result", "avg_drop", "avg_gain", "avg_increase", "evaluate_dataset", "summarize"]
