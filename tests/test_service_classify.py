"""Classify over gRPC on loopback: raw, packed and encoded images, and every error path."""

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from digits.v1 import classifier_pb2

from support.models import expected_probabilities, install
from support.servers import Running, loopback_settings, running_server, wait_available, wait_serving

ClassifyRequest = classifier_pb2.ClassifyRequest
ImageMessage = classifier_pb2.Image


# One server for the module's read-only tests: starting one per test would double the time.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Running]:
    """A server with mnist versions 1 (dense_a) and 2 (dense_b), both loaded."""
    models_root = tmp_path_factory.mktemp("models")
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    async with running_server(loopback_settings(
            models_root, max_images_per_request=1500, max_queue_images=4096)) as running:
        await wait_available(running, "mnist", [1, 2])
        yield running


def random_pixels(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def probabilities_of(response: Any) -> np.ndarray:
    return np.array([list(p.probabilities) for p in response.predictions])


async def test_packed_pixels_are_classified_by_the_newest_version(
        served: Running, model_templates: Any) -> None:
    pixels = random_pixels(20)
    response = await served.classify(pixels)
    assert (response.model, response.version) == ("mnist", 2)
    expected = expected_probabilities(model_templates.weights_b, pixels)
    np.testing.assert_allclose(probabilities_of(response), expected, atol=1e-5)
    for prediction, row in zip(response.predictions, expected, strict=True):
        assert prediction.class_index == int(row.argmax())
        assert prediction.label == str(int(row.argmax()))
        assert prediction.confidence == pytest.approx(row.max(), abs=1e-5)


async def test_image_messages_and_a_pinned_version(
        served: Running, model_templates: Any) -> None:
    pixels = random_pixels(5, seed=1)
    request = ClassifyRequest(model="mnist", version=1,
                              images=[ImageMessage(pixels=p.tobytes()) for p in pixels])
    response = await served.stub.Classify(request, timeout=10)
    assert response.version == 1
    np.testing.assert_allclose(probabilities_of(response),
                               expected_probabilities(model_templates.weights_a, pixels),
                               atol=1e-5)


async def test_top_k_ranks_the_most_probable_labels(served: Running) -> None:
    response = await served.classify(random_pixels(3, seed=2), top_k=3)
    for prediction in response.predictions:
        probabilities = np.array(prediction.probabilities)
        order = np.argsort(-probabilities)[:3]
        assert [t.label for t in prediction.top] == [str(i) for i in order]
        assert prediction.top[0].label == prediction.label
        assert [t.probability for t in prediction.top] == pytest.approx(
            probabilities[order].tolist())


def _encode(pixels: np.ndarray, fmt: str, scale: int, invert: bool, mode: str = "L") -> bytes:
    """An MNIST image as a file: enlarged, optionally black-on-white, PNG or JPEG."""
    image = Image.fromarray(255 - pixels if invert else pixels).resize(
        (28 * scale, 28 * scale), Image.Resampling.BILINEAR).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


async def test_encoded_images_of_any_size_and_polarity_match_their_raw_pixels(
        served: Running, mnist_path: Path) -> None:
    """A real digit sent as PNG/JPEG, enlarged and inverted, gets the raw digit's answer."""
    digits = np.load(mnist_path)["x_test"][:4]
    files = [_encode(digits[0], "PNG", 5, invert=True),
             _encode(digits[1], "JPEG", 9, invert=True, mode="RGB"),
             _encode(digits[2], "PNG", 3, invert=False, mode="RGBA"),
             _encode(digits[3], "JPEG", 1, invert=False)]
    encoded = await served.stub.Classify(
        ClassifyRequest(images=[ImageMessage(encoded=f) for f in files]), timeout=10)
    raw = await served.classify(digits)
    correlations = [np.corrcoef(a, b)[0, 1] for a, b in
                    zip(probabilities_of(encoded), probabilities_of(raw), strict=True)]
    assert min(correlations) > 0.9, correlations


async def test_raw_and_encoded_images_mix_in_one_request(served: Running) -> None:
    pixels = random_pixels(2, seed=3)
    request = ClassifyRequest(images=[
        ImageMessage(pixels=pixels[0].tobytes()),
        ImageMessage(encoded=_encode(pixels[1], "PNG", 2, invert=False)),
        ImageMessage(pixels=pixels[1].tobytes()),
    ])
    response = await served.stub.Classify(request, timeout=10)
    first = await served.classify(pixels[:1])
    assert len(response.predictions) == 3
    # Float sums differ slightly with the batch's shape, hence approx.
    assert list(response.predictions[0].probabilities) == pytest.approx(
        list(first.predictions[0].probabilities), abs=1e-6)


async def test_a_batch_of_1000_raw_images_fits_both_ways(served: Running) -> None:
    pixels = random_pixels(1000, seed=4)
    packed = await served.classify(pixels)
    separate = await served.stub.Classify(
        ClassifyRequest(images=[ImageMessage(pixels=p.tobytes()) for p in pixels]), timeout=20)
    assert len(packed.predictions) == len(separate.predictions) == 1000
    np.testing.assert_array_equal(probabilities_of(packed), probabilities_of(separate))


async def test_list_and_get_model_describe_versions_cards_and_signature(
        served: Running) -> None:
    listing = await served.stub.ListModels(classifier_pb2.ListModelsRequest(), timeout=5)
    assert [m.name for m in listing.models] == ["mnist"]
    model = await served.stub.GetModel(classifier_pb2.GetModelRequest(name="mnist"), timeout=5)
    assert model.default_version == 2
    assert [(v.version, v.state) for v in model.versions] == [
        (2, classifier_pb2.ModelVersionStatus.AVAILABLE),
        (1, classifier_pb2.ModelVersionStatus.AVAILABLE)]
    assert list(model.versions[0].card.labels) == [str(d) for d in range(10)]
    assert list(model.input.shape) == [-1, 28, 28] and model.input.dtype == "uint8"
    assert list(model.output.shape) == [-1, 10]
    default = await served.stub.GetModel(classifier_pb2.GetModelRequest(), timeout=5)
    assert default.name == "mnist"


BAD_REQUESTS = [
    ("empty batch", ClassifyRequest(),
     grpc.StatusCode.INVALID_ARGUMENT, "images: the batch is empty"),
    ("wrong pixel count", ClassifyRequest(images=[ImageMessage(pixels=bytes(783))]),
     grpc.StatusCode.INVALID_ARGUMENT, "images[0].pixels: has 783 bytes"),
    ("second image short", ClassifyRequest(images=[ImageMessage(pixels=bytes(784)),
                                                   ImageMessage(pixels=bytes(10))]),
     grpc.StatusCode.INVALID_ARGUMENT, "images[1].pixels: has 10 bytes"),
    ("packed not a multiple", ClassifyRequest(packed_pixels=bytes(784 * 2 + 1)),
     grpc.StatusCode.INVALID_ARGUMENT, "packed_pixels: has 1569 bytes"),
    ("both forms", ClassifyRequest(packed_pixels=bytes(784),
                                   images=[ImageMessage(pixels=bytes(784))]),
     grpc.StatusCode.INVALID_ARGUMENT, "images, packed_pixels: both are set"),
    ("undecodable", ClassifyRequest(images=[ImageMessage(encoded=b"GIF89a not really")]),
     grpc.StatusCode.INVALID_ARGUMENT, "images[0].encoded: not a PNG or JPEG image"),
    ("truncated png", ClassifyRequest(images=[ImageMessage(encoded=_encode(
        np.zeros((28, 28), np.uint8), "PNG", 4, invert=True)[:60])]),
     grpc.StatusCode.INVALID_ARGUMENT, "images[0].encoded: cannot decode"),
    ("blank image", ClassifyRequest(images=[ImageMessage(encoded=_encode(
        np.zeros((28, 28), np.uint8), "PNG", 4, invert=True))]),
     grpc.StatusCode.INVALID_ARGUMENT, "images[0].encoded: the image is blank"),
    ("empty image message", ClassifyRequest(images=[ImageMessage()]),
     grpc.StatusCode.INVALID_ARGUMENT, "images[0]: holds no data"),
    ("too many images", ClassifyRequest(packed_pixels=bytes(784 * 1501)),
     grpc.StatusCode.INVALID_ARGUMENT, "images: 1501 images exceed the limit of 1500"),
    ("top_k too large", ClassifyRequest(packed_pixels=bytes(784), top_k=11),
     grpc.StatusCode.INVALID_ARGUMENT, "top_k: 11 is out of range"),
    ("top_k negative", ClassifyRequest(packed_pixels=bytes(784), top_k=-1),
     grpc.StatusCode.INVALID_ARGUMENT, "top_k: -1 is out of range"),
    ("invalid model name", ClassifyRequest(packed_pixels=bytes(784), model="../etc"),
     grpc.StatusCode.INVALID_ARGUMENT, "model: invalid model name '../etc'"),
    ("a 10,000-character model name", ClassifyRequest(packed_pixels=bytes(784),
                                                      model="\n" + "x" * 9999),
     grpc.StatusCode.INVALID_ARGUMENT,
     "model: invalid model name '\\n" + "x" * 63 + "'... (10,000 characters)"),
    ("negative version", ClassifyRequest(packed_pixels=bytes(784), version=-3),
     grpc.StatusCode.INVALID_ARGUMENT, "version: -3 is not a version"),
    ("unknown model", ClassifyRequest(packed_pixels=bytes(784), model="fashion"),
     grpc.StatusCode.NOT_FOUND, "no model named 'fashion'; available models: mnist"),
    ("unknown version", ClassifyRequest(packed_pixels=bytes(784), version=7),
     grpc.StatusCode.NOT_FOUND, "has no version 7 loaded; loaded versions: 1, 2"),
]


@pytest.mark.parametrize(("case", "request_message", "code", "message"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
async def test_bad_requests_get_the_exact_status_and_a_message_naming_the_fix(
        served: Running, case: str, request_message: Any, code: grpc.StatusCode,
        message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await served.stub.Classify(request_message, timeout=10)
    assert raised.value.code() == code
    assert message in raised.value.details()
    assert len(raised.value.details()) < 400  # what a client sent is quoted, not repeated
    # The server is unharmed: the next request is answered.
    assert len((await served.classify(random_pixels(1))).predictions) == 1


async def test_get_model_errors(served: Running) -> None:
    for name, code in [("nope", grpc.StatusCode.NOT_FOUND),
                       ("Bad Name", grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await served.stub.GetModel(classifier_pb2.GetModelRequest(name=name), timeout=5)
        assert raised.value.code() == code


async def test_a_message_over_the_size_limit_is_refused(
        model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    settings = loopback_settings(models_root, max_message_bytes=100_000)
    async with running_server(settings) as running:
        await wait_serving(running)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await running.classify(random_pixels(200))
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len((await running.classify(random_pixels(100))).predictions) == 100


async def test_unavailable_before_any_version_is_loaded(models_root: Path) -> None:
    async with running_server(loopback_settings(models_root)) as running:
        for model in ("", "mnist", "other"):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await running.classify(random_pixels(1), model=model)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "no model is loaded yet" in raised.value.details()


async def test_corrupt_wire_bytes_are_invalid_argument(served: Running) -> None:
    raw_classify = served.channel.unary_unary("/digits.v1.Classifier/Classify")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await raw_classify(b"\x0a\x05ab", timeout=5)  # a 5-byte field holding 2 bytes
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request: not a valid Classify request message" in raised.value.details()
