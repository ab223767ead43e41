"""What a model's layers hold besides their weights: the part of a model version that an
adapter reads from the Python objects themselves.

A layer's plain settings (a ``Rescaling``'s scale, a ``LeakyReLU``'s slope, a temperature that
``forward`` reads) change what the model computes without touching a weight. A compiled pass
fixes them when it is traced, and an eager pass reads them live, so a version that sees only
the weights lets one result pair the outputs on the inputs of the model as it was with the
outputs on the masked inputs of the model as it is. :func:`settings` makes them part of the
version; the weights' sums stay the adapter's own.

>>> class Scale:
...     def __init__(self):
...         self.factor, self.kernel_size, self.seen, self._cache = 2.0, (3, 3), [], {}
>>> layer = Scale()
>>> settings(layer)
(('factor', 2.0), ('kernel_size', (3, 3)))
>>> layer.factor = float("nan")  # compared by their text: NaN equals itself here
>>> settings(layer) == settings(layer)
True
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


def settings(layer: Any, skip: frozenset = frozenset()) -> tuple:
    """``layer``'s public attributes (its ``vars``, names not starting with ``_``, not in
    ``skip``) that hold numbers, strings, None, or short tuples of them, as ``(name, value)``
    pairs: equal while they are equal, NaN included (as its text). Arrays, tensors,
    variables and other objects are left to the adapter (the weights' sums, the layers'
    identities)."""
    try:
        attributes = vars(layer)
    except TypeError:  # an object without a __dict__ (slots): nothing to read
        return ()
    # in the order the layer set them (a dict keeps it); a NaN, unequal to itself, as its text
    return tuple((name, repr(value) if value != value else value) for name, value in list(attributes.items())
                 if name[:1] != "_" and name not in skip and _plain(value))


class SettingsReader:
    """:func:`settings` of many layers at every call, cheaply: each layer's names of plain
    settings are found once (again when its attribute count changes, or a name goes), then its
    values read by one ``operator.itemgetter`` over its ``__dict__``. A Keras layer holds some 60
    attributes, nearly all private: scanning them all took 2.4 ms per look at MobileNetV2's 157
    layers, about 2% of an ``evaluate`` there, read twice a call.

    A value that stops being plain (a setting rebound to an array) is compared by identity, so
    a new object still counts as a change and no array is ever compared element-wise.

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


def _comparable(value: Any) -> Any:
    if type(value) in _FAST:
        return value if value == value else repr(value)  # NaN, unequal to itself, as its text
    return value if _plain(value) else ("object", id(value))


def digest_of_sums(sums: Any) -> str:
    """Float sums of a model's weights as text to 9 significant digits: what another process
    computes for the same weights (a parallel reduction may round the last digits otherwise).

    >>> digest_of_sums([1.0, 2.0 / 3.0])
    '1.00000000e+00 6.66666667e-01'
    """
    return " ".join(f"{float(value):.8e}" for value in sums)
