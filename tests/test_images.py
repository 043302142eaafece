"""Image conversion: raw and packed pixels, and PNG/JPEG made into MNIST form."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.service import images
from digits.service.errors import InvalidInput


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    weights = pixels.astype(np.float64)
    rows, columns = np.indices(pixels.shape)
    return (float((rows * weights).sum() / weights.sum()),
            float((columns * weights).sum() / weights.sum()))


def ink_box(pixels: np.ndarray, threshold: int = 0) -> tuple[int, int]:
    rows = np.flatnonzero((pixels > threshold).any(axis=1))
    columns = np.flatnonzero((pixels > threshold).any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(columns[-1] - columns[0] + 1)


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


@pytest.mark.parametrize(("fmt", "dark_ink"), [("PNG", True), ("PNG", False),
                                                ("JPEG", True), ("JPEG", False)])
def test_enlarged_mnist_digits_convert_back_to_their_mnist_form(
        mnist_path: Path, fmt: str, dark_ink: bool) -> None:
    """Real digits, enlarged, placed off-centre on a big canvas, come back nearly as they were."""
    digits = np.load(mnist_path)["x_test"][:60]
    correlations = []
    for index, digit in enumerate(digits):
        scale = 3 + index % 8
        canvas = np.zeros((400, 300), np.uint8)
        top, left = 10 + index, 300 - 28 * scale - index % 17
        enlarged = np.asarray(Image.fromarray(digit).resize(
            (28 * scale, 28 * scale), Image.Resampling.BILINEAR))
        canvas[top:top + 28 * scale, left:left + 28 * scale] = enlarged
        if dark_ink:
            canvas = 255 - canvas
        converted = images.decode_image(encode(canvas, fmt), "f")
        correlations.append(np.corrcoef(converted.ravel(), digit.ravel())[0, 1])
    assert np.mean(correlations) > 0.9, correlations


def test_a_blob_is_scaled_to_fit_20x20_keeping_its_aspect_and_centred_by_mass() -> None:
    canvas = np.full((300, 500), 230, np.uint8)  # light grey paper
    canvas[40:240, 380:480] = 40  # a dark bar twice as tall as wide, far off-centre
    converted = images.decode_image(encode(canvas, "PNG"), "f")
    height, width = ink_box(converted, threshold=127)
    assert height == 20 and width == 10
    row, column = centre_of_mass(converted)
    assert abs(row - 14) <= 0.5 and abs(column - 14) <= 0.5


def test_transparent_png_with_dark_strokes_is_read_as_a_viewer_shows_it() -> None:
    rgba = np.zeros((100, 100, 4), np.uint8)  # fully transparent
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # an opaque black "1"
    converted = images.decode_image(encode(rgba, "PNG"), "f")
    assert ink_box(converted, threshold=127) == (20, 3)
    assert converted.max() == 255 and converted[0, 0] == 0


def test_blank_garbled_and_oversized_images_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidInput, match="the image is blank"):
        images.decode_image(encode(np.full((50, 50), 200, np.uint8)), "images[0].encoded")
    with pytest.raises(InvalidInput, match="not a PNG or JPEG image"):
        images.decode_image(b"BM this is a bitmap header", "images[0].encoded")
    with pytest.raises(InvalidInput, match="cannot decode the image"):
        noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
        truncated = encode(noise)[:2000]
        images.decode_image(truncated, "images[0].encoded")
    with pytest.raises(InvalidInput, match="is empty"):
        images.decode_image(b"", "images[0].encoded")
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, "PNG")
    with pytest.raises(InvalidInput, match=r"8000x6000 pixels exceeds the limit.*scale"):
        images.decode_image(huge.getvalue(), "images[0].encoded")


def test_other_formats_are_refused_even_if_pillow_reads_them() -> None:
    gif = io.BytesIO()
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(gif, "GIF")
    with pytest.raises(InvalidInput, match="not a PNG or JPEG image"):
        images.decode_image(gif.getvalue(), "images[0].encoded")
