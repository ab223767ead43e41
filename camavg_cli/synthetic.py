"""A seeded synthetic image set whose object location is known, for the demo and the tests.

Each image is a noisy grey background with one coloured blob (a square or a disc) at a random
place. The class is the blob's colour (class ``k`` of ``n_classes`` has hue ``k / n_classes``),
so all the evidence for the class sits inside the blob and ``masks`` marks exactly where that
evidence is. Masking an image with its true mask keeps the evidence; masking with the inverse
removes it. That makes the set a ground truth for CAM faithfulness: a faithful CAM gives a lower
Average Drop than its inverse.

Imports NumPy only; images are generated, never shipped.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from camavg_core import validation

# The background is grey noise, so no colour channel carries class evidence outside the blob;
# the blob's colour is fully saturated so a tiny CNN learns it in seconds. The background's
# brightness varies from image to image, down to nearly black, so that an image masked to its
# object (black outside it) is still the kind of image the model was trained on.
BACKGROUND_MEAN_RANGE = (0.0, 0.6)
BACKGROUND_NOISE = 0.12
BLOB_NOISE = 0.05


class SyntheticImages(NamedTuple):
    """Images, their class labels and where each image's object is.

    Attributes:
        images: float32 (N, size, size, 3) in [0, 1], channels last.
        labels: int64 (N,), the class of each image, in ``range(n_classes)``.
        masks: float32 (N, size, size) in {0, 1}, 1 where the object is.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def class_colour(label: int, n_classes: int) -> np.ndarray:
    """The RGB colour of class ``label``: a saturated hue at ``label / n_classes`` of the wheel.

    >>> class_colour(0, 3).tolist()
    [1.0, 0.0, 0.0]
    >>> class_colour(1, 3).tolist()
    [0.0, 1.0, 0.0]
    """
    hue = label / n_classes
    # HSV -> RGB at full saturation and value: each channel is a clipped triangle wave of the hue.
    channels = [np.clip(abs(((hue + shift) * 6.0) % 6.0 - 3.0) - 1.0, 0.0, 1.0) for shift in (0.0, 2 / 3, 1 / 3)]
    return np.asarray(channels, dtype=np.float32)


def _blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A square or a disc of random radius at a random place, fully inside the image."""
    radius = int(rng.integers(max(2, size // 8), max(3, size // 4) + 1))
    row = int(rng.integers(radius, size - radius))
    col = int(rng.integers(radius, size - radius))
    rows, cols = np.mgrid[0:size, 0:size]
    if rng.random() < 0.5:
        inside = (np.abs(rows - row) < radius) & (np.abs(cols - col) < radius)
    else:
        inside = (rows - row) ** 2 + (cols - col) ** 2 < radius**2
    return inside.astype(np.float32)


def make_images(n: int, *, size: int = 32, n_classes: int = 3, seed: int = 0) -> SyntheticImages:
    """``n`` seeded images with one coloured blob each; the class is the blob's colour.

    The same ``(n, size, n_classes, seed)`` always gives the same images.

    Args:
        n: number of images, at least 1.
        size: height and width in pixels, at least 8.
        n_classes: number of classes (colours), from 2 to 12.
        seed: seed of NumPy's ``default_rng``.

    Returns:
        :class:`SyntheticImages` with ``images`` (n, size, size, 3) float32 in [0, 1],
        ``labels`` (n,) int64 and ``masks`` (n, size, size) float32 in {0, 1}.

    >>> data = make_images(4, size=16, seed=1)
    >>> data.images.shape, data.labels.shape, data.masks.shape
    ((4, 16, 16, 3), (4,), (4, 16, 16))
    >>> bool(((data.masks == 0) | (data.masks == 1)).all()), bool(data.masks.sum(axis=(1, 2)).min() > 0)
    (True, True)
    """
    for name, value, low in (("n", n, 1), ("size", size, 8), ("n_classes", n_classes, 2)):
        if not validation.is_integer(value) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if n_classes > 12:
        raise ValueError(
            f"n_classes must be at most 12 (more hues are too close to tell apart), got {n_classes}."
        )
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n).astype(np.int64)
    images = np.empty((n, size, size, 3), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=np.float32)
    for index in range(n):
        # Grey noise: the same value in all three channels, so the background has no hue.
        grey = rng.uniform(*BACKGROUND_MEAN_RANGE) + BACKGROUND_NOISE * rng.standard_normal((size, size, 1))
        mask = _blob_mask(rng, size)
        blob = class_colour(int(labels[index]), n_classes) + BLOB_NOISE * rng.standard_normal((size, size, 3))
        image = np.where(mask[..., None] > 0, blob, grey)
        images[index] = np.clip(image, 0.0, 1.0)
        masks[index] = mask
    return SyntheticImages(images=images, labels=labels, masks=masks)
