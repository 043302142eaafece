"""The corruption generator: deterministic, and each corruption does what it says."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.imaging.files import model_input
from digits.jobs.corruptions import CORRUPTIONS, Corruption, by_name, corrupted_files


@pytest.fixture(scope="module")
def digits(mnist_path: Path) -> np.ndarray:
    with np.load(mnist_path) as data:
        return np.asarray(data["x_test"][:12])


def pixels(files: list[bytes]) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
            for data in files]


def centre_of_mass(image: np.ndarray) -> np.ndarray:
    total = image.sum()
    rows, columns = np.indices(image.shape)
    return np.array([(rows * image).sum() / total, (columns * image).sum() / total])


def ink(image: np.ndarray, threshold: float = 128) -> int:
    return int((image > threshold).sum())


def variation(image: np.ndarray) -> float:
    """Total variation per pixel: how sharp the image is."""
    return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=lambda c: c.name)
def test_same_seed_same_files_and_every_file_decodes(corruption: Corruption,
                                                     digits: np.ndarray) -> None:
    first = corrupted_files(corruption, digits, seed=7)
    assert first == corrupted_files(corruption, digits, seed=7)
    if corruption.name not in ("invert",):  # deterministic ones need no seed
        assert first != corrupted_files(corruption, digits, seed=8)
    made = [model_input(data) for data in first]
    assert sum(image is not None for image in made) >= len(digits) - 1


def test_each_corruption_changes_the_digits_as_described(digits: np.ndarray) -> None:
    clean = [digit.astype(np.float32) for digit in digits]

    def run(name: str) -> list[np.ndarray]:
        return pixels(corrupted_files(by_name(name), digits, seed=1))

    for original, moved in zip(clean, run("translate"), strict=True):
        shift = centre_of_mass(moved) - (centre_of_mass(original) + 8)
        assert np.all(np.abs(shift) >= 3), shift
    for original, scaled in zip(clean, run("scale"), strict=True):
        assert not 0.6 < ink(scaled) / ink(original) < 1.6
    for original, turned in zip(clean, run("rotate"), strict=True):
        assert turned.shape != original.shape  # expanded to hold the turned digit
    for thick, thin in zip(run("thick"), run("thin"), strict=True):
        assert ink(thick) > 1.3 * ink(thin)
    for original, blurred in zip(clean, run("blur"), strict=True):
        assert variation(blurred) < 0.8 * variation(original)
    for original, noisy in zip(clean, run("noise"), strict=True):
        background = original == 0
        assert noisy[background].std() > 10
    for original, inverted in zip(clean, run("invert"), strict=True):
        np.testing.assert_array_equal(inverted, 255 - original)
    for original, coarse in zip(clean, run("low_resolution"), strict=True):
        assert coarse.shape == (56, 56)
        assert variation(coarse) < variation(original)


def test_photographed_digits_are_dark_on_uneven_paper(digits: np.ndarray) -> None:
    files = corrupted_files(by_name("photographed"), digits, seed=3)
    assert all(data[:3] == b"\xff\xd8\xff" for data in files)  # JPEG
    for photo in pixels(files):
        assert photo.shape == (120, 160)
        border = np.concatenate([photo[0], photo[-1], photo[:, 0], photo[:, -1]])
        assert border.mean() > 150 and border.std() > 5  # light, uneven paper
        assert photo.min() < 100  # dark ink


def test_an_unknown_corruption_is_named_with_the_choices() -> None:
    with pytest.raises(ValueError, match="choose from translate, scale"):
        by_name("smudge")
