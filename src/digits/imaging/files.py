"""PNG and JPEG files to grayscale, and to the MNIST-form digit a model takes.

Upright (EXIF orientation applied; broken EXIF counts as upright), transparency shown on
white, large photos shrunk first. Size limits are the caller's: ``check_size`` sees the
dimensions from the header, before any pixel is decoded.
"""

import io
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image

from digits.imaging import mnist_form

FORMATS = ("PNG", "JPEG")
# Large photos are shrunk to this many pixels on the longer side before processing: a
# digit needs far fewer, and the arithmetic after is per pixel.
WORKING_SIZE = 512
_ORIENTATION = 0x0112
_TRANSPOSE = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
              4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
              6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE],
              8: [Image.Transpose.ROTATE_90]}
# Pillow warns about malformed metadata it then skips; callers say what matters.
warnings.filterwarnings("ignore", module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
Image.MAX_IMAGE_PIXELS = None  # the callers' own limits decide, before decoding


def grayscale(data: bytes, check_size: Callable[[int, int], None] | None = None
              ) -> tuple[np.ndarray, int]:
    """Float32 grayscale at most WORKING_SIZE on a side, upright, transparency on white,
    and the pixels the file held. Raises whatever Pillow raises for a bad file."""
    image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = image.size
    if check_size is not None:
        check_size(width, height)
    orientation = _orientation(image)
    # JPEG can decode at a fraction of its size directly, which is much cheaper.
    image.draft("L", (WORKING_SIZE, WORKING_SIZE))
    transparent = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info)
    image = image.convert("LA" if transparent else "L")
    image.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
    for step in _TRANSPOSE.get(orientation, []):
        image = image.transpose(step)
    values = np.asarray(image, dtype=np.float32)
    if transparent:  # composite onto white, as a viewer shows it
        alpha = values[..., 1] / 255.0
        values = values[..., 0] * alpha + 255.0 * (1.0 - alpha)
    return values, width * height


def model_input(data: bytes) -> np.ndarray | None:
    """The MNIST-form uint8 [28, 28] digit of an image file, or None when it is blank."""
    return mnist_form.digit_of(grayscale(data)[0])


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: upright); broken EXIF counts as upright."""
    try:
        value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # malformed EXIF: the pixels may still be fine
        return 1
    return value if isinstance(value, int) else 1
