"""Request images to MNIST-form uint8 [28, 28] arrays: raw pixels, packed batches, PNG/JPEG.

Encoded images are converted the way MNIST itself was made: grayscale, ink made white on
black, cropped to the ink, scaled to fit a 20x20 box keeping the aspect ratio, then placed
in a 28x28 field so that the centre of mass of the ink is at the centre.
"""

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digits.api import IMAGE_SIZE, PIXELS_PER_IMAGE
from digits.service.domain import ImageInput, RawImage
from digits.service.errors import InvalidInput

FORMATS = ("PNG", "JPEG")
# Decoding cost and memory grow with the pixel count; a phone photo has about 12 million.
MAX_ENCODED_PIXELS = 40_000_000
# Large photos are shrunk to this many pixels on the longer side before processing: a
# digit needs far fewer, and the arithmetic below is per pixel.
WORKING_SIZE = 512
DIGIT_BOX = 20
# Ink must differ from the background by this many grey levels, or the image is blank.
MIN_CONTRAST = 32
# After the background is subtracted and contrast stretched to 0..255, pixels above this
# count as ink when finding the digit's bounding box (keeps paper noise out of the crop).
INK_THRESHOLD = 48

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


def to_batch(items: Sequence[ImageInput]) -> np.ndarray:
    """Raw and encoded images as one uint8 [N, 28, 28] batch (decoding is real work: call
    this off the event loop)."""
    batch = np.empty((len(items), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for index, item in enumerate(items):
        if isinstance(item, RawImage):
            batch[index] = raw_pixels(item.pixels, item.field)
        else:
            batch[index] = decode_image(item.data, item.field)
    return batch


def decode_image(data: bytes, field: str) -> np.ndarray:
    """A PNG or JPEG of any size and polarity converted to MNIST form, uint8 [28, 28]."""
    ink = _ink_white_on_black(_decode_grayscale(data, field))
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise InvalidInput(f"{field}: the image is blank (no ink stands out from the "
                           "background); send a picture of a digit")
    return to_mnist_form(ink * (255.0 / peak))


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


def _decode_grayscale(data: bytes, field: str) -> np.ndarray:
    """Decode PNG/JPEG bytes to float32 grayscale, at most WORKING_SIZE on a side."""
    if not data:
        raise InvalidInput(f"{field}: is empty; send the bytes of a PNG or JPEG file")
    try:
        with warnings.catch_warnings():
            # Pillow warns before it refuses huge images; the size check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > MAX_ENCODED_PIXELS:
                raise InvalidInput(
                    f"{field}: {width}x{height} pixels exceeds the limit of "
                    f"{MAX_ENCODED_PIXELS:,}; scale the image down")
            # JPEG can decode at a fraction of its size directly, which is much cheaper.
            image.draft("L", (WORKING_SIZE, WORKING_SIZE))
            grayscale = _flatten_alpha(ImageOps.exif_transpose(image)).convert("L")
            grayscale.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
            return np.asarray(grayscale, dtype=np.float32)
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise InvalidInput(f"{field}: not a PNG or JPEG image; send the bytes of a PNG or "
                           "JPEG file, or 784 raw bytes in 'pixels'") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        # Pillow reports truncated or foreign data as any of these.
        raise InvalidInput(
            f"{field}: cannot decode the image ({error}); send a PNG or JPEG file, or raw "
            f"pixels in 'pixels'") from None


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite transparent images onto white, as a viewer shows them."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image


def _ink_white_on_black(grayscale: np.ndarray) -> np.ndarray:
    """Make the ink white on a zero background (grey levels above the background).

    The background level is the median of the border pixels: a digit rarely touches
    every edge, whereas the mean is pulled by thick strokes.
    """
    border = np.concatenate(
        [grayscale[0], grayscale[-1], grayscale[1:-1, 0], grayscale[1:-1, -1]])
    background = float(np.median(border))
    if background > 127:  # dark ink on a light background: invert, as MNIST is white on black
        grayscale = 255.0 - grayscale
        background = 255.0 - background
    return np.clip(grayscale - background, 0, None)


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
