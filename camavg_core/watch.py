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


def digest_of_sums(sums: Any) -> str:
    """Float sums of a model's weights as text to 9 significant digits: what another process
    computes for the same weights (a parallel reduction may round the last digits otherwise).

    >>> digest_of_sums([1.0, 2.0 / 3.0])
    '1.00000000e+00 6.66666667e-01'
    """
    return " ".join(f"{float(value):.8e}" for value in sums)
