"""Raw request pixels: one image's 784 bytes and packed batches."""


import numpy as np
import pytest

from digits.service import images
from digits.service.errors import InvalidInput


def test_raw_pixels_are_used_as_they_are() -> None:
    data = bytes(range(256)) * 3 + bytes(16)
    pixels = images.raw_pixels(data, "images[0].pixels")
    assert pixels.shape == (28, 28) and pixels.tobytes() == data


@pytest.mark.parametrize("size", [0, 783, 785, 28 * 28 * 3])
def test_wrong_raw_sizes_name_the_field_and_the_format(size: int) -> None:
    with pytest.raises(InvalidInput, match=rf"images\[3\].pixels: has {size} bytes; send 28x28"):
        images.raw_pixels(bytes(size), "images[3].pixels")


def test_packed_batches_split_into_images() -> None:
    data = np.arange(3 * 784, dtype=np.uint32).astype(np.uint8).tobytes()
    batch = images.packed_batch(data)
    assert batch.shape == (3, 28, 28) and batch.tobytes() == data
    with pytest.raises(InvalidInput, match="packed_pixels: is empty"):
        images.packed_batch(b"")
    with pytest.raises(InvalidInput, match="not a multiple of 784"):
        images.packed_batch(bytes(784 + 5))
