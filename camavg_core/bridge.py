"""The seed's ``AveragesCam`` API, written once for every framework adapter.

An adapter (``camavg_tf.AveragesCam``, ``camavg_jax.AveragesCam``) computes the model's outputs
on the inputs once, at construction, and implements ``_masked_scores``: one compiled masked
forward pass that returns the (N,) target scores. Everything else lives here: the cache that
lets ``average_drop`` then ``average_increase`` share one pass, the equations, and ``evaluate``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from camavg_core import validation
from camavg_core.buffers import copy_into, same_bits
from camavg_core.equations import avg_drop, avg_gain, avg_increase
from camavg_core.result import Result
from camavg_core.scoring import score_key
from camavg_core.summary import summarize


class Kept(NamedTuple):
    """What the masked-pass cache keeps of a CAM set: the caller's object and a copy."""

    source: Any
    copy: Any


def snapshot(cams: Any, previous: Kept | None = None) -> Kept:
    """What the masked-pass cache keeps to recognise these CAMs on the next call.

    NumPy arrays are mutable, so beside the caller's object the cache keeps a copy, to notice an
    in-place change. Framework tensors are immutable: the tensor itself is enough. The copy
    reuses the buffer of the ``previous`` one when the shapes agree (no fresh pages to fault in
    for every CAM method), and is aligned so that the adapter's pass can borrow it
    (:func:`private`) instead of copying the caller's array again.
    """
    return Kept(source=cams, copy=_copy(cams, None if previous is None else previous.copy))


def _copy(cams: Any, buffer: Any = None) -> Any:
    if isinstance(cams, (list, tuple)):
        buffers = buffer if isinstance(buffer, list) and len(buffer) == len(cams) else [None] * len(cams)
        return [_copy(item, old) for item, old in zip(cams, buffers)]
    if isinstance(cams, np.ndarray) or hasattr(cams, "assign"):  # tf.Variable: mutable too
        return copy_into(np.asarray(cams), buffer if isinstance(buffer, np.ndarray) else None)
    return None


def private(kept: Kept) -> Any:
    """The CAM set as the cache holds it: camavg's copy of each mutable array, the caller's
    own object for each immutable tensor. The pass reads this, so what it computes is what the
    cache later compares against, whatever the caller does to its arrays meanwhile."""
    if isinstance(kept.source, (list, tuple)) and isinstance(kept.copy, list):
        return [private(Kept(source, copy)) for source, copy in zip(kept.source, kept.copy)]
    return kept.source if kept.copy is None else kept.copy


def matches(kept: Kept, cams: Any) -> bool:
    """Whether ``cams`` is the CAM set :func:`snapshot` kept, unchanged.

    Another object is another CAM set (a miss at once, with no comparison: the common case of
    a new CAM method); the same object is compared bit for bit with the copy (NaN included).
    """
    return _same_object(kept.source, cams) and _unchanged(kept.copy, cams)


def _same_object(source: Any, cams: Any) -> bool:
    if isinstance(source, (list, tuple)):
        return (
            isinstance(cams, (list, tuple))
            and len(cams) == len(source)
            and all(_same_object(s, c) for s, c in zip(source, cams))
        )
    return source is cams


def _unchanged(copy: Any, cams: Any) -> bool:
    if isinstance(copy, list):
        return all(_unchanged(k, c) for k, c in zip(copy, cams))
    if copy is None:
        return True
    return same_bits(np.asarray(cams), copy)


def _by_value(key: Any) -> bool:
    """Whether a :func:`~camavg_core.scoring.score_key` names its score by value (tf-keras-vis
    scores) rather than by the identity of a callable."""
    if isinstance(key, tuple) and key and key[0] == "callable":
        return False
    return all(_by_value(part) for part in key) if isinstance(key, tuple) else True


class AveragesCamBase:
    """Average Drop, Average Increase and Average Gain of CAMs for one model and its inputs.

    Subclasses set ``self.model``, ``self.inputs``, ``self.n`` and implement
    :meth:`_plain_scores` and :meth:`_masked_scores`.
    """

    model: Any
    inputs: Any
    n: int

    def _init_options(
        self,
        *,
        batch_size: int | None,
        activation: str | None,
        nan_policy: str,
        normalize: bool,
        data_format: str,
        level: float,
    ) -> None:
        validation.check_options(
            activation=activation,
            nan_policy=nan_policy,
            data_format=data_format,
            level=level,
            normalize=normalize,
            batch_size=batch_size,
        )
        self.batch_size = batch_size
        self.activation = activation
        self.nan_policy = nan_policy
        self.normalize = normalize
        self.data_format = data_format
        self.level = level
        self._cache_key: tuple | None = None
        self._cache_cams: Kept | None = None
        self._cache_scores: tuple[np.ndarray, np.ndarray] | None = None
        self._plain_key: tuple | None = None  # Y_c of the last tf-keras-vis score
        self._plain_cache: np.ndarray | None = None
        # (N,) samples whose inputs hold NaN or infinity; only under nan_policy='omit'. Their
        # scores become NaN, so they are skipped and counted even when the model hides the NaN
        # (max pooling, clipping and fused ReLUs all can).
        self._bad_inputs: np.ndarray | None = None

    # ----------------------------------------------------------------- adapter hooks
    def _plain_scores(self, score_function: Any) -> np.ndarray:
        """(N,) scores of the cached outputs on the plain inputs."""
        raise NotImplementedError

    def _masked_scores(self, cams: Any, score_function: Any) -> np.ndarray:
        """(N,) scores on the masked inputs: one forward pass.

        ``cams`` is :func:`private`'s: every NumPy array in it is camavg's own aligned copy,
        which the adapter may lend to its framework without copying it again.
        """
        raise NotImplementedError

    def _start_masked_scores(self, cams: Any, score_function: Any) -> Callable[[], np.ndarray]:
        """Start the masked pass and return what waits for its (N,) scores. An adapter whose
        framework dispatches asynchronously (JAX) returns before the pass ends, so that Y_c
        is computed meanwhile; by default the pass runs here, to the end."""
        o_c = self._masked_scores(cams, score_function)
        return lambda: o_c

    # ----------------------------------------------------------------- the seed's API
    def _get_scores(self, cams: Any, score_function: Callable) -> tuple[np.ndarray, np.ndarray]:
        """Scores over the inputs and over the inputs masked with ``cams``.

        Returns:
            ``(Y_c, O_c)``, NumPy arrays of shape (N,). The masked pass is cached for the last
            (cams, score_function), so several metrics of one CAM set cost one pass.
        """
        key = score_key(score_function)
        hit = (
            self._cache_scores is not None
            and key == self._cache_key
            and self._cache_cams is not None
            and matches(self._cache_cams, cams)
        )
        if not hit:
            # the copy first, into the buffer of the last one, which the cache then no longer
            # describes; the pass reads the copy
            self._cache_key, self._cache_scores = None, None
            kept = self._cache_cams = snapshot(cams, self._cache_cams)
            finish = self._start_masked_scores(private(kept), score_function)
            y_c = self._cached_plain_scores(score_function, key)  # while the pass computes
            o_c = finish()
            if self._bad_inputs is not None and self._bad_inputs.any():
                y_c[self._bad_inputs] = np.nan
                o_c[self._bad_inputs] = np.nan
            # the score function is kept alive so that its id in the key cannot be reused
            self._cache_key = key
            self._cache_score_function = score_function
            self._cache_scores = (y_c, o_c)
        y_c, o_c = self._cache_scores
        return y_c.copy(), o_c.copy()

    def _cached_plain_scores(self, score_function: Any, key: tuple) -> np.ndarray:
        """Y_c, from the outputs cached at construction. A tf-keras-vis score's key holds its
        class indices or target values, so its Y_c is kept for the next CAM set; a plain
        callable may read state that has changed since, so it is called every time."""
        if key == self._plain_key:
            return self._plain_cache.copy()
        y_c = self._plain_scores(score_function)
        if _by_value(key):
            self._plain_key, self._plain_cache = key, y_c.copy()
        return y_c

    def average_drop(self, cams: Any, score_function: Callable, return_vector: bool = False):
        r"""Average Drop in percent, :math:`100 \frac{1}{N}\sum_i \frac{\max(0, Y_i - O_i)}{Y_i + \epsilon}`.

        Returns ``value``, or ``(value, Y_c, O_c)`` with ``return_vector=True``.
        """
        y_c, o_c = self._get_scores(cams, score_function)
        value = avg_drop(y_c, o_c, nan_policy=self.nan_policy)
        return (value, y_c, o_c) if return_vector else value

    def average_increase(self, cams: Any, score_function: Callable, return_vector: bool = False):
        r"""Average Increase in percent, :math:`100 \frac{1}{N}\sum_i [Y_i < O_i]`.

        Returns ``value``, or ``(value, Y_c, O_c)`` with ``return_vector=True``.
        """
        y_c, o_c = self._get_scores(cams, score_function)
        value = avg_increase(y_c, o_c, nan_policy=self.nan_policy)
        return (value, y_c, o_c) if return_vector else value

    def average_gain(self, cams: Any, score_function: Callable, return_vector: bool = False):
        r"""Average Gain in percent, :math:`100 \frac{1}{N}\sum_i \frac{\max(0, O_i - Y_i)}{1 - Y_i + \epsilon}`.

        Returns ``value``, or ``(value, Y_c, O_c)`` with ``return_vector=True``.
        """
        y_c, o_c = self._get_scores(cams, score_function)
        value = avg_gain(y_c, o_c, nan_policy=self.nan_policy)
        return (value, y_c, o_c) if return_vector else value

    def evaluate(self, cams: Any, score_function: Callable) -> Result:
        """All three metrics, their intervals, n and the score vectors: one masked pass."""
        y_c, o_c = self._get_scores(cams, score_function)
        return summarize(y_c, o_c, nan_policy=self.nan_policy, level=self.level)

    def evaluate_many(self, cams_list: Sequence[Any], score_function: Callable) -> list[Result]:
        """One :class:`Result` per CAM set, for comparing CAM methods on the same inputs."""
        if isinstance(cams_list, np.ndarray) or not isinstance(cams_list, (list, tuple)):
            raise TypeError(
                "evaluate_many takes a list of CAM sets, one per method, got "
                f"{type(cams_list).__name__}; for one CAM set use evaluate(cams, score_function)."
            )
        return [self.evaluate(cams, score_function) for cams in cams_list]
