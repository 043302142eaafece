"""Images as tensor protocols carry them: pixels with a shape, or a list of files.

Every tensor protocol (the Open Inference Protocol, TensorFlow Serving's) has its own
names for data types and fields; once it has checked the type, it hands the data here,
raw little-endian bytes or the elements in row-major order, to become the data plane's
images, with the same checks and messages everywhere.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from digits.api import IMAGE_SIZE, PIXELS_PER_IMAGE
from digits.service.domain import EncodedImage
from digits.service.errors import InvalidInput


def pixels(data: bytes | Sequence[Any], shape: Sequence[int], field: str) -> np.ndarray:
    """uint8 [N, 28, 28] pixels from their raw bytes or their elements."""
    shape = tuple(shape)
    if len(shape) != 3 or shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or shape[0] < 0:
        raise InvalidInput(f"{field}.shape: {list(shape)}; send [N, 28, 28] for N "
                           "images of 28x28 pixels")
    expected = shape[0] * PIXELS_PER_IMAGE
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) != expected:
            raise InvalidInput(f"{field}: has {len(data)} bytes of data, its shape "
                               f"{list(shape)} needs {expected}")
        return np.frombuffer(data, dtype=np.uint8).reshape(shape)
    if len(data) != expected:
        raise InvalidInput(f"{field}: has {len(data)} elements, its shape {list(shape)} "
                           f"needs {expected}")
    try:
        values = np.asarray(data)
    except (TypeError, ValueError, OverflowError):
        values = np.asarray(["not integers"])
    if values.size and values.dtype.kind not in "iu":
        raise InvalidInput(f"{field}: the data are not integers; send pixel values 0 to 255")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise InvalidInput(f"{field}: values outside 0..255; send uint8 pixels")
    return values.astype(np.uint8).reshape(shape)


def files(elements: Sequence[Any], shape: Sequence[int], field: str) -> list[EncodedImage]:
    """One PNG or JPEG file per element of a [N] (or [N, 1]) tensor."""
    shape = tuple(shape)
    if len(shape) not in (1, 2) or shape[1:] not in ((), (1,)) or shape[0] < 0:
        raise InvalidInput(f"{field}.shape: {list(shape)}; send [N] (or [N, 1]) for N "
                           "image files")
    if len(elements) != shape[0]:
        raise InvalidInput(f"{field}: has {len(elements)} elements, its shape {list(shape)} "
                           f"needs {shape[0]}")
    images = []
    for index, element in enumerate(elements):
        if not isinstance(element, bytes | bytearray):
            raise InvalidInput(f"{field}[{index}]: not bytes; send the bytes of a PNG or "
                               "JPEG file")
        images.append(EncodedImage(bytes(element), f"{field}[{index}]"))
    return images
