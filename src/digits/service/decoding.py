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
import time
from collections.abc import Sequence

import numpy as np
from PIL import UnidentifiedImageError

from digits.api import PIXELS_PER_IMAGE
from digits.imaging import files, mnist_form
from digits.service import images
from digits.service.domain import ImageInput, RawImage
from digits.service.errors import DeadlineExpired, InvalidInput, echo

# One decoding job does about this many pixels before the next request's turn.
JOB_PIXELS = 4_000_000


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
        grayscale, pixels = files.grayscale(
            data, lambda width, height: budget.take(width, height, field))
    except (InvalidInput, DeadlineExpired):
        raise
    except UnidentifiedImageError:
        raise InvalidInput(f"{field}: not a PNG or JPEG image; send the bytes of a PNG or "
                           "JPEG file, or 784 raw bytes in 'pixels'") from None
    except Exception as error:  # whatever the imaging library raises: the file is bad
        raise InvalidInput(f"{field}: cannot decode the image ({type(error).__name__}: "
                           f"{echo(str(error), 120)}); send a valid PNG or JPEG file") from None
    digit = mnist_form.digit_of(grayscale)
    if digit is None:
        raise InvalidInput(f"{field}: the image is blank (no ink stands out from the "
                           "background); send a picture of a digit")
    return digit, pixels


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if hasattr(
    ctypes, "CDLL") else None


def _release_memory() -> None:
    """Give freed heap pages back to the system (glibc's malloc_trim; no-op elsewhere)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
