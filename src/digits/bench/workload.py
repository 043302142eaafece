"""The images the benchmark sends, and its requests serialised once ahead of the load."""

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digits.api import IMAGE_SIZE
from digits.bench.scenarios import Encoding
from digits.oip import open_inference_pb2
from digits.v1 import classifier_pb2


def sample_images(mnist: Path | None, count: int, seed: int = 0) -> np.ndarray:
    """``count`` uint8 [28, 28] digits: MNIST test images when ``mnist`` is given, else
    digits drawn with PIL's built-in font (speed does not depend on which)."""
    rng = np.random.default_rng(seed)
    if mnist is not None:
        with np.load(mnist) as data:
            test_images = data["x_test"]
        return np.ascontiguousarray(test_images[rng.integers(0, len(test_images), count)])
    drawn = np.zeros((count, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for index in range(count):
        image = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE))
        ImageDraw.Draw(image).text(
            (10 + int(rng.integers(-2, 3)), 8 + int(rng.integers(-2, 3))),
            str(int(rng.integers(0, 10))), fill=255)
        drawn[index] = np.asarray(image)
    return drawn


def encode_png(pixels: np.ndarray) -> bytes:
    """One MNIST image as the PNG a user would send: dark ink on white paper."""
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).save(buffer, format="PNG")
    return buffer.getvalue()


Request = classifier_pb2.ClassifyRequest | open_inference_pb2.ModelInferRequest


def build_request(pixels: np.ndarray, encoding: Encoding, model: str,
                  version: int) -> Request:
    """The request for ``pixels`` [N, 28, 28]. digits.v1: raw (one image in ``images``, a
    batch in ``packed_pixels``, the fast path) or every image as its own PNG in ``images``;
    oip: a ModelInferRequest with one UINT8 tensor in raw contents."""
    if encoding == "oip":
        infer = open_inference_pb2.ModelInferRequest(
            model_name=model, model_version=str(version) if version else "")
        infer.inputs.add(name="pixels", datatype="UINT8", shape=pixels.shape)
        infer.raw_input_contents.append(np.ascontiguousarray(pixels).tobytes())
        return infer
    request = classifier_pb2.ClassifyRequest(model=model, version=version)
    if encoding == "png":
        request.images.extend(classifier_pb2.Image(encoded=encode_png(image)) for image in pixels)
    elif len(pixels) == 1:
        request.images.add(pixels=pixels[0].tobytes())
    else:
        request.packed_pixels = np.ascontiguousarray(pixels).tobytes()
    return request


def request_payloads(
    images: np.ndarray,
    images_per_request: int,
    encoding: Encoding,
    model: str,
    version: int,
    variants: int = 4,
) -> list[bytes]:
    """``variants`` serialised requests of distinct images, cycled by the load generator so
    the client spends its CPU on sending, not on building messages."""
    payloads = []
    for variant in range(variants):
        rows = (np.arange(images_per_request) + variant * images_per_request) % len(images)
        payloads.append(
            build_request(images[rows], encoding, model, version).SerializeToString())
    return payloads


def http_payloads(images: np.ndarray, images_per_request: int, model: str, version: int,
                  variants: int = 4) -> tuple[list[bytes], list[int], str]:
    """Bodies of OIP HTTP inference requests with the binary tensor data extension (a JSON
    header, then the raw pixels), their header lengths, and the path they go to."""
    bodies, lengths = [], []
    for variant in range(variants):
        rows = (np.arange(images_per_request) + variant * images_per_request) % len(images)
        raw = np.ascontiguousarray(images[rows]).tobytes()
        header = json.dumps({"inputs": [{
            "name": "pixels", "datatype": "UINT8", "shape": [images_per_request, 28, 28],
            "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }).encode()
        bodies.append(header + raw)
        lengths.append(len(header))
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return bodies, lengths, path
