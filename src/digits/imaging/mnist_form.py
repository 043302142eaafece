"""Grayscale ink to MNIST form: the way MNIST itself was made.

Ink made white on a black background, cropped to the ink, scaled to fit a 20x20 box
keeping the aspect ratio, then placed in a 28x28 field with the ink's centre of mass at
the centre.
"""

import numpy as np
from PIL import Image

from digits.api import IMAGE_SIZE

DIGIT_BOX = 20
# Ink must differ from the background by this many grey levels, or the image is blank.
MIN_CONTRAST = 32
# Smoothed edges whose 10th and 90th percentiles differ by more than this are uneven
# lighting; only in images this large on each side (photos: a small image's edges are
# too short to tell lighting from noise).
UNEVEN_BORDER = 24
MIN_LIT_SIZE = 48
# After the background is subtracted and contrast stretched to 0..255, pixels above this
# count as ink when finding the digit's bounding box (keeps paper noise out of the crop).
INK_THRESHOLD = 48


def ink_of(grayscale: np.ndarray) -> np.ndarray | None:
    """Float grayscale of any polarity -> white-on-black ink stretched to 0..255, or None
    when no ink stands out from the background (a blank image)."""
    ink = _ink_white_on_black(grayscale)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        return None
    return ink * (255.0 / peak)


def digit_of(grayscale: np.ndarray) -> np.ndarray | None:
    """Float grayscale of any polarity and size -> MNIST-form uint8 [28, 28], or None
    when it is blank: the whole conversion, after decoding."""
    ink = ink_of(grayscale)
    return None if ink is None else to_mnist_form(ink)


def to_mnist_form(ink: np.ndarray) -> np.ndarray:
    """White-on-black float ink (0..255, any size) -> MNIST-form uint8 [28, 28].

    Crops to the ink, scales to fit 20x20 keeping the aspect ratio, and centres the
    result by its centre of mass in a 28x28 field.
    """
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    columns = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    cropped = ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    height, width = cropped.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Lanczos resampling anti-aliases like the normalisation MNIST's authors used.
    digit = np.asarray(
        Image.fromarray(cropped.astype(np.float32)).resize(
            size, Image.Resampling.LANCZOS),
        dtype=np.float32,
    ).clip(0, 255)
    field_image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    top, left = _centred_offset(digit)
    field_image[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return np.rint(field_image).astype(np.uint8)


def _ink_white_on_black(grayscale: np.ndarray) -> np.ndarray:
    """Make the ink white on a zero background (grey levels above the background).

    The background level is the median of the border pixels: a digit rarely touches
    every edge, whereas the mean is pulled by thick strokes. When the border's level
    drifts by more than UNEVEN_BORDER along the edges (paper photographed under uneven
    light; noise alone does not count, the edges are median-smoothed first), the
    background is instead interpolated across the image from its four edges.
    """
    border = np.concatenate(
        [grayscale[0], grayscale[-1], grayscale[1:-1, 0], grayscale[1:-1, -1]])
    background = float(np.median(border))
    if background > 127:  # dark ink on a light background: invert, as MNIST is white on black
        grayscale = 255.0 - grayscale
        background = 255.0 - background
    if min(grayscale.shape) >= MIN_LIT_SIZE:
        edges = [_smoothed(edge) for edge in (grayscale[0], grayscale[-1], grayscale[:, 0],
                                              grayscale[:, -1])]
        low, high = np.percentile(np.concatenate(edges), [10, 90])
        if high - low > UNEVEN_BORDER:
            return np.clip(grayscale - _interpolated_background(grayscale.shape, *edges),
                           0, None)
    return np.clip(grayscale - background, 0, None)


def _interpolated_background(shape: tuple[int, ...], top: np.ndarray, bottom: np.ndarray,
                             left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The background under uneven light: a Coons patch through the four (smoothed)
    edges."""
    height, width = shape
    u = np.linspace(0.0, 1.0, width)[None, :]
    v = np.linspace(0.0, 1.0, height)[:, None]
    corners = ((1 - u) * (1 - v) * top[0] + u * (1 - v) * top[-1]
               + (1 - u) * v * bottom[0] + u * v * bottom[-1])
    return ((1 - v) * top[None, :] + v * bottom[None, :]
            + (1 - u) * left[:, None] + u * right[:, None] - corners)


def _smoothed(edge: np.ndarray) -> np.ndarray:
    """A running median over a fifth of the edge, so that ink touching the edge, or
    noise, is not taken for the paper's level."""
    half = max(1, len(edge) // 10)
    padded = np.pad(edge, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=1)


def _centred_offset(digit: np.ndarray) -> tuple[int, int]:
    """Top-left corner placing ``digit``'s centre of mass at the centre of the 28x28 field."""
    total = float(digit.sum())
    height, width = digit.shape
    if total <= 0:
        return (IMAGE_SIZE - height) // 2, (IMAGE_SIZE - width) // 2
    row_centre = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
    column_centre = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    # MNIST's centres of mass sit at row and column 14.0 on average (0-based pixel
    # indices, measured on its test set), half a pixel past the geometric centre 13.5.
    centre = IMAGE_SIZE / 2
    top = round(centre - row_centre)
    left = round(centre - column_centre)
    # A lopsided digit may not be centrable without leaving the field: keep it inside.
    return (min(max(top, 0), IMAGE_SIZE - height), min(max(left, 0), IMAGE_SIZE - width))
