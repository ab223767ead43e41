"""The demo's synthetic images: seeded, in range, and the mask marks exactly the coloured blob."""

import numpy as np
import pytest

from camavg_cli.synthetic import class_colour, make_images


def test_shapes_dtypes_and_ranges():
    data = make_images(10, size=24, n_classes=4, seed=3)
    assert data.images.shape == (10, 24, 24, 3) and data.images.dtype == np.float32
    assert data.labels.shape == (10,) and data.labels.dtype == np.int64
    assert data.masks.shape == (10, 24, 24) and data.masks.dtype == np.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert set(np.unique(data.masks)) <= {0.0, 1.0}
    assert set(data.labels.tolist()) <= {0, 1, 2, 3}
    # Every image has an object, and none covers the whole image.
    object_pixels = data.masks.sum(axis=(1, 2))
    assert (object_pixels > 0).all() and (object_pixels < 24 * 24).all()


def test_same_seed_same_images_other_seed_other_images():
    first, again, other = make_images(5, seed=7), make_images(5, seed=7), make_images(5, seed=8)
    for name in ("images", "labels", "masks"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.images, other.images)


def test_background_is_grey_and_object_has_its_class_colour():
    data = make_images(20, seed=2)
    for image, label, mask in zip(data.images, data.labels, data.masks):
        background = image[mask == 0]
        # Grey: all three channels equal (the same noise in each).
        np.testing.assert_array_equal(background[:, 0], background[:, 1])
        np.testing.assert_array_equal(background[:, 1], background[:, 2])
        # The object's mean colour is nearest to its own class colour.
        mean_colour = image[mask == 1].mean(axis=0)
        distances = [np.abs(mean_colour - class_colour(k, 3)).sum() for k in range(3)]
        assert int(np.argmin(distances)) == label


def test_class_colours_are_distinct_hues():
    np.testing.assert_array_equal(class_colour(0, 3), [1, 0, 0])
    np.testing.assert_array_equal(class_colour(1, 3), [0, 1, 0])
    np.testing.assert_array_equal(class_colour(2, 3), [0, 0, 1])
    np.testing.assert_array_equal(class_colour(1, 6), [1, 1, 0])


def test_all_classes_appear_in_a_large_draw():
    assert set(make_images(60, n_classes=3, seed=0).labels.tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"n": 0}, "n"), ({"n": 2, "size": 4}, "size"), ({"n": 2, "n_classes": 1}, "n_classes"),
     ({"n": 2, "n_classes": 13}, "n_classes"), ({"n": 2.5}, "n"), ({"n": True}, "n")],
)
def test_bad_arguments_name_themselves(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        make_images(**kwargs)
