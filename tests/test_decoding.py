"""PNG and JPEG files made into MNIST form: the conversion, the limits, the decode jobs, and
malformed files (a structure-aware corpus), which are bad input and never anything else."""

import io
import random
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits.service.decoding import JOB_PIXELS, Budget, decode_image, decode_some
from digits.service.domain import EncodedImage, RawImage
from digits.service.errors import DeadlineExpired, InvalidInput

from support.malformed_images import corpus, exif_block

GENEROUS = 10**9


def decode(data: bytes, field: str, max_image_pixels: int = GENEROUS) -> np.ndarray:
    return decode_image(data, field, Budget(GENEROUS, max_image_pixels))[0]


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
        converted = decode(encode(canvas, fmt), "f")
        correlations.append(np.corrcoef(converted.ravel(), digit.ravel())[0, 1])
    assert np.mean(correlations) > 0.9, correlations


def test_a_blob_is_scaled_to_fit_20x20_keeping_its_aspect_and_centred_by_mass() -> None:
    canvas = np.full((300, 500), 230, np.uint8)  # light grey paper
    canvas[40:240, 380:480] = 40  # a dark bar twice as tall as wide, far off-centre
    converted = decode(encode(canvas, "PNG"), "f")
    height, width = ink_box(converted, threshold=127)
    assert height == 20 and width == 10
    row, column = centre_of_mass(converted)
    assert abs(row - 14) <= 0.5 and abs(column - 14) <= 0.5


def test_transparent_png_with_dark_strokes_is_read_as_a_viewer_shows_it() -> None:
    rgba = np.zeros((100, 100, 4), np.uint8)  # fully transparent
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # an opaque black "1"
    converted = decode(encode(rgba, "PNG"), "f")
    assert ink_box(converted, threshold=127) == (20, 3)
    assert converted.max() == 255 and converted[0, 0] == 0


def test_blank_garbled_and_oversized_images_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidInput, match="the image is blank"):
        decode(encode(np.full((50, 50), 200, np.uint8)), "images[0].encoded")
    with pytest.raises(InvalidInput, match="not a PNG or JPEG image"):
        decode(b"BM this is a bitmap header", "images[0].encoded")
    with pytest.raises(InvalidInput, match="cannot decode the image"):
        noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
        truncated = encode(noise)[:2000]
        decode(truncated, "images[0].encoded")
    with pytest.raises(InvalidInput, match="is empty"):
        decode(b"", "images[0].encoded")
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, "PNG")
    with pytest.raises(InvalidInput, match=r"8000x6000 pixels is over the limit of "
                                            r"16,000,000 per image; scale the image down"):
        decode(huge.getvalue(), "images[0].encoded", max_image_pixels=16_000_000)


def test_other_formats_are_refused_even_if_pillow_reads_them() -> None:
    gif = io.BytesIO()
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(gif, "GIF")
    with pytest.raises(InvalidInput, match="not a PNG or JPEG image"):
        decode(gif.getvalue(), "images[0].encoded")


def png_with(chunk_type: bytes, payload: bytes, pixels: np.ndarray) -> bytes:
    """A PNG of ``pixels`` with one extra chunk inserted before its image data."""
    data = encode(pixels, "PNG")
    index = data.index(b"IDAT") - 4
    chunk = (struct.pack(">I", len(payload)) + chunk_type + payload
             + struct.pack(">I", zlib.crc32(chunk_type + payload)))
    return data[:index] + chunk + data[index:]


def a_seven() -> np.ndarray:
    canvas = np.full((60, 40), 255, np.uint8)
    canvas[10:14, 8:32] = 0
    canvas[14:50, 26:30] = 0
    return canvas


def test_broken_exif_is_ignored_when_the_pixels_are_fine() -> None:
    plain = decode(encode(a_seven(), "PNG"), "f")
    rng = random.Random(7)
    for _ in range(200):
        converted = decode(png_with(b"eXIf", exif_block(rng), a_seven()), "f")
        # Broken orientation data counts as upright; a valid rotation may still apply.
        assert converted.shape == (28, 28) and converted.max() == 255
    assert plain.max() == 255


def test_the_exif_orientation_is_applied() -> None:
    digit = a_seven()
    rotated = np.rot90(digit)  # stored turned a quarter left, tagged "rotate 90 CW to view"
    image = Image.fromarray(rotated)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    upright = decode(encode(digit, "JPEG"), "f")
    assert np.corrcoef(decode(buffer.getvalue(), "f").ravel(), upright.ravel())[0, 1] > 0.9


def test_every_malformed_file_is_invalid_input_or_a_digit() -> None:
    """2,000 structure-aware mutations of PNG and JPEG files (the reliability suite runs
    many more): nothing but InvalidInput ever escapes."""
    outcomes = {"digit": 0, "invalid": 0}
    for name, data in corpus(2000, seed=11):
        try:
            converted = decode(data, name, max_image_pixels=16_000_000)
        except InvalidInput as error:
            assert str(error).startswith(name), error
            assert len(str(error)) < 400
            outcomes["invalid"] += 1
        else:
            assert converted.shape == (28, 28) and converted.dtype == np.uint8
            outcomes["digit"] += 1
    assert outcomes["invalid"] > 500 and outcomes["digit"] > 100, outcomes


def test_a_requests_pixels_are_budgeted_across_its_images() -> None:
    files = [encode(a_seven(), "PNG")] * 3  # 2,400 pixels each
    budget = Budget(5000, 16_000_000)
    decode_image(files[0], "images[0]", budget)
    decode_image(files[1], "images[1]", budget)
    with pytest.raises(InvalidInput, match="the request's images hold over 5,000 pixels"):
        decode_image(files[2], "images[2]", budget)


def test_decoding_works_in_jobs_of_bounded_pixels_and_stops_at_the_deadline() -> None:
    large = encode(np.tile(a_seven(), (40, 40)), "PNG")  # 2400 x 1600: 3.84 million pixels
    items = [EncodedImage(large, f"images[{i}]") for i in range(3)] + [
        RawImage(bytes(784), "images[3].pixels")]
    out = np.empty((4, 28, 28), np.uint8)
    budget = Budget(GENEROUS, GENEROUS)
    first = decode_some(items, 0, out, budget, None)
    assert first == 2  # 3.84 + 3.84 million pixels reach JOB_PIXELS: the job ends
    assert JOB_PIXELS <= 2 * 3_840_000
    assert decode_some(items, first, out, budget, None) == 4
    assert (out[3] == 0).all()
    with pytest.raises(DeadlineExpired, match="0 of 4 done"):
        decode_some(items, 0, out, Budget(GENEROUS, GENEROUS), time.monotonic() - 1)
