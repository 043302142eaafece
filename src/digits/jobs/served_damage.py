"""Damaged training digits as the service hands them to the model: noisy, coarsely
scanned, blurred or turned, then sent through the service's own MNIST-style preprocessing.

Damage added to the model's 28x28 input (``augmentation``) is not the damage the model
meets in service. The preprocessing subtracts the background, stretches the contrast,
crops to the ink and refits it to 20x20: a noisy image's crop takes in the whole field,
so the digit shrinks and the noise is rescaled with it; a coarse scan is dimmer and
refitted. So a share of the training split is damaged here, on the images themselves, and
converted exactly as a PNG of them would be. The ranges are wider than the robustness
report's, and only training digits are used, never test digits.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter

from digits.imaging import mnist_form
from digits.jobs.data import Split

Damaging = Callable[[Image.Image, np.random.Generator], Image.Image]


def _noise(digit: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian noise over everything, standard deviation 10 to 60 grey levels."""
    pixels = np.asarray(digit, dtype=np.float32)
    noisy = pixels + rng.normal(0, float(rng.uniform(10, 60)), pixels.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _coarse_scan(digit: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Down to 8 to 14 pixels square, back up to 28 to 56."""
    small = int(rng.integers(8, 15))
    large = int(rng.integers(28, 57))
    return (digit.resize((small, small), Image.Resampling.BOX)
            .resize((large, large), Image.Resampling.BILINEAR))


def _blur(digit: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur of radius 0.5 to 2.5 pixels."""
    return digit.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5))))


def _rotation(digit: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Turned by up to 45 degrees either way (the preprocessing refits the result)."""
    return digit.rotate(float(rng.uniform(-45, 45)), Image.Resampling.BILINEAR, expand=True)


DAMAGES: dict[str, Damaging] = {"noise": _noise, "coarse_scan": _coarse_scan, "blur": _blur,
                              "rotation": _rotation}


@dataclass(frozen=True)
class ServedDamage:
    """For each kind of damage, the share of the training digits that get one more copy
    damaged that way (so 0.2 adds a fifth of the training set)."""

    noise: float = 0.0
    coarse_scan: float = 0.0
    blur: float = 0.0
    rotation: float = 0.0

    @property
    def any(self) -> bool:
        return any(asdict(self).values())


def served(image: Image.Image) -> np.ndarray | None:
    """What the service makes of ``image`` sent as a PNG file (lossless, so the same
    pixels): uint8 [28, 28], or None when it would refuse it as blank."""
    return mnist_form.digit_of(np.asarray(image, dtype=np.float32))


def damaged_copies(train: Split, shares: ServedDamage, seed: int) -> Split:
    """For each kind of damage, its share of ``train``'s digits (drawn at random) damaged
    that way and preprocessed as the service would. Deterministic for a seed; a copy the
    service would refuse as blank is left out."""
    images, labels = [], []
    for position, (kind, share) in enumerate(asdict(shares).items()):
        # Each kind draws from its own stream: changing one share leaves the others' copies.
        rng = np.random.default_rng([seed, position])
        chosen = rng.choice(len(train), size=round(share * len(train)), replace=False)
        for index in np.sort(chosen):
            made = served(DAMAGES[kind](Image.fromarray(train.images[index]), rng))
            if made is not None:
                images.append(made)
                labels.append(train.labels[index])
    return Split(np.asarray(images, np.uint8).reshape(-1, 28, 28),
                 np.asarray(labels, train.labels.dtype))
