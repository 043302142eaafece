"""Corrupted and out-of-distribution versions of MNIST test digits, in the spirit of
MNIST-C: seeded, so the same seed always gives the same files.

Every corruption turns white-on-black uint8 [28, 28] digits into image *files* (PNG, or
JPEG for the photographed one) of any size and polarity, which the robustness report
sends through the service's own decoding and MNIST-style preprocessing: what is scored
is exactly what the server would make of that file.
"""

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

Corrupt = Callable[[np.ndarray, np.random.Generator], Image.Image | bytes]


@dataclass(frozen=True)
class Corruption:
    """One kind of damage: its name, what it does, and the function doing it to a digit."""

    name: str
    description: str
    apply: Corrupt


def _image(digit: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(digit, dtype=np.uint8), mode="L")


def _on_canvas(digit: Image.Image, size: int, left: int, top: int) -> Image.Image:
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(digit, (left, top))
    return canvas


def _sign(rng: np.random.Generator) -> int:
    return 1 if rng.random() < 0.5 else -1


def translate(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Moved 4 to 8 pixels on each axis within a 44x44 field."""
    dx, dy = (_sign(rng) * int(rng.integers(4, 9)) for _ in range(2))
    return _on_canvas(_image(digit), 44, 8 + dx, 8 + dy)


def scale(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Half to twice the size, on a 64x64 field."""
    factor = float(rng.choice([rng.uniform(0.5, 0.75), rng.uniform(1.5, 2.0)]))
    size = max(4, round(28 * factor))
    scaled = _image(digit).resize((size, size), Image.Resampling.BILINEAR)
    return _on_canvas(scaled, 64, (64 - size) // 2, (64 - size) // 2)


def rotate(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Turned 20 to 40 degrees either way."""
    angle = _sign(rng) * float(rng.uniform(20, 40))
    return _image(digit).rotate(angle, Image.Resampling.BILINEAR, expand=True)


def shear(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Slanted: x += k * y with |k| from 0.3 to 0.6, on a widened field."""
    k = _sign(rng) * float(rng.uniform(0.3, 0.6))
    wide = _on_canvas(_image(digit), 56, 14, 14)
    return wide.transform(wide.size, Image.Transform.AFFINE, (1, k, -k * 28, 0, 1, 0),
                          Image.Resampling.BILINEAR)


def thick(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Marker strokes: dilated by 2 or 3 pixels at 4x resolution (about half a pixel to
    a pixel at MNIST's scale, on each side)."""
    large = _image(digit).resize((112, 112), Image.Resampling.BILINEAR)
    size = int(rng.choice([5, 7]))
    return large.filter(ImageFilter.MaxFilter(size))


def thin(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Fine pen: eroded by 1 or 2 pixels at 4x resolution."""
    large = _image(digit).resize((112, 112), Image.Resampling.BILINEAR)
    size = int(rng.choice([3, 5]))
    return large.filter(ImageFilter.MinFilter(size))


def blur(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Out of focus: Gaussian blur of radius 1 to 2 pixels."""
    return _image(digit).filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 2.0))))


def noise(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Sensor noise: Gaussian, standard deviation 30 to 50 grey levels, over everything."""
    sigma = float(rng.uniform(30, 50))
    noisy = digit.astype(np.float32) + rng.normal(0, sigma, digit.shape)
    return _image(np.clip(noisy, 0, 255).astype(np.uint8))


def invert(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Black ink on white, as on paper."""
    return _image(255 - digit)


def low_resolution(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A coarse scan: down to 8 to 12 pixels square, then back up to 56."""
    size = int(rng.integers(8, 13))
    small = _image(digit).resize((size, size), Image.Resampling.BOX)
    return small.resize((56, 56), Image.Resampling.BILINEAR)


def photographed(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A phone photo of paper: dark ink on uneven, textured paper, the digit small and off
    centre on a large canvas, saved as a JPEG of middling quality."""
    width, height = 160, 120
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    angle = float(rng.uniform(0, 2 * math.pi))
    # Paper lit from one side: 170 to 235 grey levels across the sheet, plus texture.
    light = 200 + 35 * ((x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle))
    paper = light + rng.normal(0, 6, (height, width))
    size = int(rng.integers(44, 64))
    ink = np.asarray(_image(digit).resize((size, size), Image.Resampling.BICUBIC),
                     dtype=np.float32) / 255.0
    left = int(rng.integers(10, width - size - 10))
    top = int(rng.integers(10, height - size - 10))
    region = paper[top:top + size, left:left + size]
    # Ink darkens the paper towards about 40 grey levels where the stroke is solid.
    paper[top:top + size, left:left + size] = region * (1 - ink) + 40 * ink
    buffer = io.BytesIO()
    _image(np.clip(paper, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


CORRUPTIONS = (
    Corruption("translate", "moved 4-8 px on each axis", translate),
    Corruption("scale", "0.5-0.75x or 1.5-2x the size", scale),
    Corruption("rotate", "turned 20-40 degrees", rotate),
    Corruption("shear", "slanted, shear 0.3-0.6", shear),
    Corruption("thick", "marker strokes (dilated)", thick),
    Corruption("thin", "fine pen strokes (eroded)", thin),
    Corruption("blur", "Gaussian blur, radius 1-2 px", blur),
    Corruption("noise", "Gaussian noise, sd 30-50", noise),
    Corruption("invert", "black ink on white", invert),
    Corruption("low_resolution", "8-12 px square, scaled back up", low_resolution),
    Corruption("photographed", "dark ink on uneven paper, large canvas, JPEG", photographed),
)


def by_name(name: str) -> Corruption:
    """The corruption called ``name``; ValueError listing the names otherwise."""
    for corruption in CORRUPTIONS:
        if corruption.name == name:
            return corruption
    raise ValueError(f"no corruption named {name!r}; choose from "
                     f"{', '.join(c.name for c in CORRUPTIONS)}")


def corrupted_files(corruption: Corruption, digits: np.ndarray, seed: int) -> list[bytes]:
    """``digits`` (uint8 [N, 28, 28]) damaged by ``corruption``, as image files.

    Deterministic: each corruption draws from its own stream of ``seed``.
    """
    index = [c.name for c in CORRUPTIONS].index(corruption.name)
    rng = np.random.default_rng([seed, index])
    files = []
    for digit in digits:
        made = corruption.apply(digit, rng)
        if isinstance(made, Image.Image):
            buffer = io.BytesIO()
            made.save(buffer, "PNG")
            made = buffer.getvalue()
        files.append(made)
    return files
