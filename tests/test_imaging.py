"""The file-to-MNIST-form conversion shared by the service and the jobs: photos under
uneven light keep their digit."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.imaging import mnist_form
from digits.imaging.files import model_input
from digits.jobs.corruptions import by_name, corrupted_files


def _png(digit: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, "PNG")
    return buffer.getvalue()


def _likeness(digits: np.ndarray, files: list[bytes]) -> float:
    """Median correlation between each file's conversion and its clean digit's."""
    scores = []
    for digit, data in zip(digits, files, strict=True):
        made, reference = model_input(data), model_input(_png(digit))
        assert made is not None and reference is not None
        scores.append(np.corrcoef(made.ravel(), reference.ravel())[0, 1])
    return float(np.median(scores))


def test_a_digit_photographed_under_uneven_light_keeps_its_shape(
        mnist_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with np.load(mnist_path) as data:
        digits = np.asarray(data["x_test"][:24])
    photos = corrupted_files(by_name("photographed"), digits, seed=0)
    assert _likeness(digits, photos) > 0.8
    # Without the lighting correction the lit side of the paper passes for ink.
    monkeypatch.setattr(mnist_form, "MIN_LIT_SIZE", 10**9)
    assert _likeness(digits, photos) < 0.6


def test_noise_on_a_small_image_keeps_the_single_background_level(mnist_path: Path) -> None:
    """A 28x28 image's edges are too short to tell lighting from noise: one level."""
    with np.load(mnist_path) as data:
        digits = np.asarray(data["x_test"][:8])
    for data in corrupted_files(by_name("noise"), digits, seed=0):
        grayscale = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32)
        border = np.concatenate([grayscale[0], grayscale[-1], grayscale[1:-1, 0],
                                 grayscale[1:-1, -1]])
        ink = mnist_form.ink_of(grayscale)
        assert ink is not None
        expected = np.clip(grayscale - np.median(border), 0, None)
        np.testing.assert_allclose(ink, expected * (255.0 / expected.max()), rtol=1e-5)
