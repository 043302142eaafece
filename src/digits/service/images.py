"""Raw request pixels to uint8 [28, 28] arrays: one image's 784 bytes, or packed batches.

(PNG and JPEG files are ``decoding``'s business.)
"""

import numpy as np

from digits.api import IMAGE_SIZE, PIXELS_PER_IMAGE
from digits.service.errors import InvalidInput

_RAW_FORMAT = "28x28 uint8 pixels, row-major, white ink on black (784 bytes)"


def raw_pixels(data: bytes, field: str) -> np.ndarray:
    """One raw image (784 bytes) as uint8 [28, 28]; ``field`` names it in errors."""
    if len(data) != PIXELS_PER_IMAGE:
        raise InvalidInput(f"{field}: has {len(data)} bytes; send {_RAW_FORMAT}")
    return np.frombuffer(data, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def raw_batch(chunks: list[bytes], field: str) -> np.ndarray:
    """Several raw images as uint8 [N, 28, 28] with one copy; ``field`` is e.g. 'images'."""
    for index, chunk in enumerate(chunks):
        if len(chunk) != PIXELS_PER_IMAGE:
            raise InvalidInput(f"{field}[{index}].pixels: has {len(chunk)} bytes; "
                               f"send {_RAW_FORMAT}")
    joined = b"".join(chunks)
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def packed_batch(data: bytes, field: str = "packed_pixels") -> np.ndarray:
    """N*784 raw pixels back to back as uint8 [N, 28, 28] (no copy)."""
    if not data:
        raise InvalidInput(f"{field}: is empty; send N*784 bytes of {_RAW_FORMAT}")
    if len(data) % PIXELS_PER_IMAGE:
        raise InvalidInput(
            f"{field}: has {len(data)} bytes, not a multiple of {PIXELS_PER_IMAGE}; send "
            f"N images of {_RAW_FORMAT} back to back")
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
