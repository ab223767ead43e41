"""What a model's layers hold besides their weights: the part of a model version that an
adapter reads from the Python objects themselves.

A layer's plain settings (a ``Rescaling``'s scale, a ``LeakyReLU``'s slope, a temperature that
``forward`` reads) change what the model computes without touching a weight. A compiled pass
fixes them when it is traced, and an eager pass reads them live, so a version that sees only
the weights lets one result pair the outputs on the inputs of the model as it was with the
outputs on the masked inputs of the model as it is. :class:`SettingsReader` makes them part of
the version; the weights' sums stay the adapter's own.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any

#: the values a setting may hold, alone or in (short) tuples of them
PLAIN = (numbers.Number, str, bytes, type(None))
#: the common ones, looked up by type before the slower check against the ABC
_FAST = frozenset({bool, int, float, str, type(None)})


def _plain(value: Any, depth: int = 0) -> bool:
    if type(value) in _FAST or isinstance(value, PLAIN):
        return True
    # a tuple is a setting (a kernel size); a list is more often a record the layer keeps
    if isinstance(value, tuple) and depth < 2 and len(value) <= 64:
        return all(_plain(item, depth + 1) for item in value)
    return False


class SettingsReader:
    """Each layer's plain settings, read at every call: its public attributes (its ``vars``,
    names not starting with ``_``, not in ``skip``) that hold numbers, strings, None, or short
    tuples of them. Arrays, tensors, variables and other objects are left to the adapter (the
    weights' sums, the layers' identities). Cheaply: each layer's names of settings are found
    once (again when its attribute count changes, or a name goes), then its values read by one
    ``operator.itemgetter`` over its ``__dict__``. A Keras layer holds some 60
    attributes, nearly all private: scanning them all took 2.4 ms per look at MobileNetV2's 157
    layers, about 2% of an ``evaluate`` there, read twice a call.

    A value that stops being plain (a setting rebound to an array) is compared by identity, and
    held by the version that names it (so its id cannot be reused for another object while the
    version is kept): a new object still counts as a change and no array is ever compared
    element-wise. A NaN, unequal to itself, is compared as its text.

    >>> class Scale:
    ...     def __init__(self):
    ...         self.factor, self._cache = 2.0, {}
    >>> layer, reader = Scale(), SettingsReader()
    >>> reader([layer])
    ((('factor',), (2.0,)),)
    >>> layer.factor = 3.0
    >>> reader([layer])
    ((('factor',), (3.0,)),)
    >>> layer.scale = (1, 1)  # a new attribute: the count changed, the names are found again
    >>> reader([layer])
    ((('factor', 'scale'), (3.0, (1, 1))),)
    >>> layer.factor = float("nan")
    >>> reader([layer]) == reader([layer])
    True
    >>> import numpy as np
    >>> layer.factor = np.ones(2)  # rebound to an array: the same array is the same setting
    >>> first = reader([layer])
    >>> first == reader([layer])
    True
    >>> layer.factor = np.ones(2)  # another array, though equal: another setting
    >>> first == reader([layer])
    False
    """

    def __init__(self, skip: frozenset = frozenset()) -> None:
        self.skip = skip
        self._known: dict[int, tuple] = {}  # id -> (layer, attribute count, names, getter)

    def _names(self, layer: Any, attributes: dict) -> tuple:
        names = tuple(name for name, value in list(attributes.items())
                      if name[:1] != "_" and name not in self.skip and _plain(value))
        getter = operator.itemgetter(*names) if len(names) > 1 else (
            (lambda found: (found[names[0]],)) if names else (lambda found: ()))
        return (layer, len(attributes), names, getter)

    def __call__(self, layers: list) -> tuple:
        known, out = {}, []
        for layer in layers:
            try:
                attributes = vars(layer)
            except TypeError:  # an object without a __dict__ (slots): nothing to read
                out.append(((), ()))
                continue
            entry = self._known.get(id(layer))
            if entry is None or entry[0] is not layer or entry[1] != len(attributes):
                entry = self._names(layer, attributes)
            try:
                values = entry[3](attributes)
            except KeyError:  # a setting deleted (and another added): found again
                entry = self._names(layer, attributes)
                values = entry[3](attributes)
            known[id(layer)] = entry
            out.append((entry[2], tuple(_comparable(value) for value in values)))
        self._known = known  # replaced whole: a thread reading the old dict still reads a whole one
        return tuple(out)


class _Same:
    """An object that is no plain setting, compared by identity and held alive: its id cannot
    be taken by another object while a version holding it is kept."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def _comparable(value: Any) -> Any:
    if type(value) in _FAST:
        return value if value == value else repr(value)  # NaN, unequal to itself, as its text
    return value if _plain(value) else _Same(value)


def digest_of_sums(sums: Any) -> str:
    """Float sums of a model's weights as text to 9 significant digits: what another process
    computes for the same weights (a parallel reduction may round the last digits otherwise).

    >>> digest_of_sums([1.0, 2.0 / 3.0])
    '1.00000000e+00 6.66666667e-01'
    """
    return " ".join(f"{float(value):.8e}" for value in sums)
