"""PNG and JPEG files to MNIST-form digits: within pixel limits, never failing open.

Any failure of the imaging library is InvalidInput naming the image; broken EXIF is
ignored (the orientation is then taken as upright), as the pixels may be fine. Each image
may hold at most ``max_image_pixels`` and a request's images ``max_request_pixels`` in
all, counted from the headers before the pixels are decoded. The data plane decodes a
request in jobs of about ``JOB_PIXELS`` pixels, one job at a time, so requests take turns
in the decode threads and one stops between images once its deadline has passed.
"""

import ctypes
import ctypes.util
import io
import time
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from digits.api import PIXELS_PER_IMAGE
from digits.service import images, mnist_form
from digits.service.domain import ImageInput, RawImage
from digits.service.errors import DeadlineExpired, InvalidInput, echo

FORMATS = ("PNG", "JPEG")
# Large photos are shrunk to this many pixels on the longer side before processing: a
# digit needs far fewer, and the arithmetic below is per pixel.
WORKING_SIZE = 512
# One decoding job does about this many pixels before the next request's turn.
JOB_PIXELS = 4_000_000
_ORIENTATION = 0x0112
_TRANSPOSE = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
              4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
              6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE],
              8: [Image.Transpose.ROTATE_90]}
# Pillow warns about malformed metadata it then skips; the answer says what matters.
warnings.filterwarnings("ignore", module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
Image.MAX_IMAGE_PIXELS = None  # our own limits decide, before decoding


class Budget:
    """The pixels a request's images may still hold."""

    def __init__(self, max_request_pixels: int, max_image_pixels: int) -> None:
        self.left = max_request_pixels
        self.total = max_request_pixels
        self.max_image_pixels = max_image_pixels

    def take(self, width: int, height: int, field: str) -> None:
        pixels = width * height
        if pixels > self.max_image_pixels:
            raise InvalidInput(f"{field}: {width}x{height} pixels is over the limit of "
                               f"{self.max_image_pixels:,} per image; scale the image down")
        if pixels > self.left:
            raise InvalidInput(f"images: the request's images hold over {self.total:,} pixels "
                               "in all, the limit per request; send fewer or smaller images")
        self.left -= pixels


def decode_some(items: Sequence[ImageInput], start: int, out: np.ndarray, budget: Budget,
                deadline: float | None) -> int:
    """In a decode thread: decode ``items[start:]`` into ``out`` until about JOB_PIXELS
    pixels are done; returns where the next job starts."""
    done, index = 0, start
    while index < len(items) and done < JOB_PIXELS:
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExpired(f"the deadline passed while decoding the images "
                                  f"({index} of {len(items)} done); the rest were not decoded")
        item = items[index]
        if isinstance(item, RawImage):
            out[index] = images.raw_pixels(item.pixels, item.field)
            done += PIXELS_PER_IMAGE
        else:
            out[index], pixels = decode_image(item.data, item.field, budget)
            done += pixels
        index += 1
    if done >= JOB_PIXELS:
        _release_memory()  # large images leave freed pages that glibc keeps otherwise
    return index


def decode_image(data: bytes, field: str, budget: Budget) -> tuple[np.ndarray, int]:
    """One PNG or JPEG file in MNIST form, uint8 [28, 28], and the pixels it held."""
    if not data:
        raise InvalidInput(f"{field}: is empty; send the bytes of a PNG or JPEG file")
    try:
        grayscale, pixels = _grayscale(data, field, budget)
    except (InvalidInput, DeadlineExpired):
        raise
    except UnidentifiedImageError:
        raise InvalidInput(f"{field}: not a PNG or JPEG image; send the bytes of a PNG or "
                           "JPEG file, or 784 raw bytes in 'pixels'") from None
    except Exception as error:  # whatever the imaging library raises: the file is bad
        raise InvalidInput(f"{field}: cannot decode the image ({type(error).__name__}: "
                           f"{echo(str(error), 120)}); send a valid PNG or JPEG file") from None
    ink = mnist_form.ink_of(grayscale)
    if ink is None:
        raise InvalidInput(f"{field}: the image is blank (no ink stands out from the "
                           "background); send a picture of a digit")
    return mnist_form.to_mnist_form(ink), pixels


def _grayscale(data: bytes, field: str, budget: Budget) -> tuple[np.ndarray, int]:
    """Float32 grayscale at most WORKING_SIZE on a side, upright, transparency on white."""
    image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = image.size
    budget.take(width, height, field)
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


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: upright); broken EXIF counts as upright."""
    try:
        value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # malformed EXIF: the pixels may still be fine
        return 1
    return value if isinstance(value, int) else 1


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if hasattr(
    ctypes, "CDLL") else None


def _release_memory() -> None:
    """Give freed heap pages back to the system (glibc's malloc_trim; no-op elsewhere)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
