"""Damaged training digits, preprocessed as the service preprocesses a file it receives."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.imaging.files import model_input
from digits.jobs.data import Split
from digits.jobs.served_damage import DAMAGES, ServedDamage, damaged_copies, served


def _train(mnist_path: Path, count: int = 60) -> Split:
    with np.load(mnist_path) as data:
        return Split(data["x_train"][:count], data["y_train"][:count])


def _roughness(images: np.ndarray) -> float:
    return float(np.abs(np.diff(images.astype(np.float32), axis=2)).mean())


def test_served_is_what_the_service_makes_of_the_same_pixels_as_a_png(
        mnist_path: Path) -> None:
    rng = np.random.default_rng(1)
    for digit in _train(mnist_path, 12).images:
        for damage in DAMAGES.values():
            image = damage(Image.fromarray(digit), rng)
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            np.testing.assert_array_equal(served(image), model_input(buffer.getvalue()))


def test_a_blank_image_is_left_out_as_the_service_would_refuse_it() -> None:
    assert served(Image.new("L", (28, 28), 0)) is None
    blank = Split(np.zeros((10, 28, 28), np.uint8), np.arange(10, dtype=np.uint8))
    assert len(damaged_copies(blank, ServedDamage(blur=1.0), seed=0)) == 0


def test_copies_are_deterministic_and_keep_their_labels(mnist_path: Path) -> None:
    train = _train(mnist_path)
    shares = ServedDamage(noise=0.5, coarse_scan=0.2, blur=0.1, rotation=1.0)
    first, again = (damaged_copies(train, shares, seed=4) for _ in range(2))
    np.testing.assert_array_equal(first.images, again.images)
    assert len(first) == 30 + 12 + 6 + 60
    other = damaged_copies(train, shares, seed=5)
    assert not np.array_equal(first.images, other.images)
    # Every digit chosen, in order: the labels are the originals'.
    turned = first.subset(np.arange(48, 108))
    np.testing.assert_array_equal(turned.labels, train.labels)
    assert turned.images.dtype == np.uint8 and turned.images.shape == (60, 28, 28)
    # One kind's copies do not depend on the others' shares.
    alone = damaged_copies(train, ServedDamage(rotation=1.0), seed=4)
    np.testing.assert_array_equal(alone.images, turned.images)
    assert not ServedDamage().any and shares.any


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_each_kind_changes_the_preprocessed_digit_as_it_says(mnist_path: Path,
                                                             kind: str) -> None:
    train = _train(mnist_path)
    made = [served(Image.fromarray(digit)) for digit in train.images]
    clean = np.stack([digit for digit in made if digit is not None])
    assert len(clean) == len(train)
    damaged = damaged_copies(train, ServedDamage(**{kind: 1.0}), seed=2).images
    changed = np.abs(damaged.astype(int) - clean).reshape(len(clean), -1).max(axis=1) > 64
    assert changed.mean() > 0.8  # the mildest (blur radius 0.5) change little
    if kind == "noise":  # the noise survives the background subtraction
        assert (damaged[clean == 0] > 0).mean() > 0.2
        assert (clean[clean == 0] > 0).mean() == 0
    elif kind in ("blur", "coarse_scan"):
        assert _roughness(damaged) < 0.8 * _roughness(clean)
    else:  # turned: the ink's slant changes, the preprocessing still centres it
        rows, columns = np.mgrid[:28, :28]
        for digit in damaged[:10].astype(np.float64):
            mass = digit.sum()
            centre = ((rows * digit).sum() / mass, (columns * digit).sum() / mass)
            assert abs(centre[0] - 14) < 1.5 and abs(centre[1] - 14) < 1.5
