"""The data plane alone, in domain types: request checks (once, here), routing, decoding
off the event loop, prediction metrics, metadata and readiness. Fake models stand in for
TensorFlow; the gRPC tests run the same path against real ones."""

import concurrent.futures
import io
import re
import threading
from collections.abc import AsyncIterator
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

from digits.modelstore.saved_model import LoadedModel
from digits.service.dataplane import PLATFORM, DataPlane
from digits.service.domain import ClassifyRequest, EncodedImage, RawImage
from digits.service.errors import InvalidInput, ModelNotFound, ModelUnavailable
from digits.service.metrics import ServiceMetrics
from digits.service.models.registry import ModelRegistry, ModelVersion, RegistryListener
from digits.service.prediction_metrics import PredictionRecorder
from digits.service.settings import LimitSettings
from digits.v1.model_card_pb2 import ModelCard

LABELS = tuple(str(digit) for digit in range(10))


class MeanModel:
    """Puts all probability on (mean pixel // 26), so every answer can be checked."""

    labels = LABELS
    card = ModelCard(labels=LABELS)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        output = np.zeros((len(pixels), 10), np.float32)
        classes = (pixels.reshape(len(pixels), -1).mean(axis=1) // 26).astype(int)
        output[np.arange(len(pixels)), classes] = 1
        return output


class DirectPredictor:
    """Calls the model on the event loop and records what it was given."""

    def __init__(self, model: MeanModel) -> None:
        self.model = model
        self.calls: list[np.ndarray] = []

    async def predict(self, pixels: np.ndarray, deadline: float | None = None) -> np.ndarray:
        self.calls.append(pixels)
        return self.model.predict(pixels)

    async def close(self) -> None:
        pass


class AttachPredictor(RegistryListener):
    async def on_load(self, version: ModelVersion) -> None:
        version.predictor = DirectPredictor(cast(MeanModel, version.model))


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A decode pool that counts its jobs and the threads they ran on."""

    def __init__(self) -> None:
        super().__init__(1, "decode")
        self.jobs = 0
        self.threads: set[str] = set()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.jobs += 1

        def run() -> Any:
            self.threads.add(threading.current_thread().name)
            return fn(*args, **kwargs)

        return super().submit(run)


class Plane:
    def __init__(self) -> None:
        self.metrics = ServiceMetrics()
        self.registry = ModelRegistry([AttachPredictor()])
        self.decoder = CountingExecutor()
        self.predictions = PredictionRecorder(self.metrics)
        self.dataplane = DataPlane(
            self.registry, default_model="mnist",
            limits=LimitSettings(max_images_per_request=8), decode_executor=self.decoder,
            predictions=self.predictions)

    async def load(self, name: str, number: int) -> None:
        await self.registry.loaded(name, number, cast(LoadedModel, MeanModel()), None)

    def calls(self, name: str = "mnist") -> list[np.ndarray]:
        with self.registry.acquire(name) as version:
            return cast(DirectPredictor, version.predictor).calls


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    plane = Plane()
    yield plane
    await plane.registry.close()
    plane.decoder.shutdown()


def grey(*levels: int) -> np.ndarray:
    """Images of one grey level each: the fake model predicts level // 26."""
    return np.stack([np.full((28, 28), level, np.uint8) for level in levels])


def png(level: int) -> bytes:
    """A 56x56 PNG of a dark square on white: decodes to a centred white blob."""
    image = Image.new("L", (56, 56), 255)
    image.paste(level, (18, 18, 38, 38))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_batch_is_classified_by_the_default_models_newest_version(
        plane: Plane) -> None:
    await plane.load("mnist", 1)
    await plane.load("mnist", 2)
    answer = await plane.dataplane.classify(ClassifyRequest(grey(0, 130, 255), top_k=2))
    assert (answer.model, answer.version, answer.labels, answer.top_k) == (
        "mnist", 2, LABELS, 2)
    assert answer.probabilities.argmax(axis=1).tolist() == [0, 5, 9]
    sample = plane.metrics.registry.get_sample_value
    version = {"model": "mnist", "version": "2"}
    assert sample("digits_images_classified_total", version) == 3
    assert sample("digits_predictions_total", version | {"label": "5"}) == 1
    assert sample("digits_prediction_confidence_count", version) == 3


async def test_raw_and_encoded_images_are_decoded_off_the_event_loop(plane: Plane) -> None:
    await plane.load("mnist", 1)
    answer = await plane.dataplane.classify(ClassifyRequest(
        [RawImage(grey(130)[0].tobytes(), "images[0].pixels"),
         EncodedImage(png(0), "images[1].encoded")]))
    assert answer.probabilities.shape == (2, 10)
    assert plane.decoder.jobs == 1 and plane.decoder.threads == {"decode_0"}
    assert plane.calls()[0].shape == (2, 28, 28)


BAD = [
    ("empty", ClassifyRequest(np.zeros((0, 28, 28), np.uint8)), "images: the batch is empty"),
    ("empty list", ClassifyRequest([]), "images: the batch is empty"),
    ("too many", ClassifyRequest(grey(*[0] * 9)), "images: 9 images exceed the limit of 8"),
    ("wrong dtype", ClassifyRequest(grey(0).astype(np.float32)), "expected uint8 [N, 28, 28]"),
    ("wrong shape", ClassifyRequest(np.zeros((2, 28, 27), np.uint8)), "got uint8 [2, 28, 27]"),
    ("no batch axis", ClassifyRequest(np.zeros((28, 28), np.uint8)), "got uint8 [28, 28]"),
    ("top_k too large", ClassifyRequest(grey(0), top_k=11), "top_k: 11 is out of range"),
    ("top_k negative", ClassifyRequest(grey(0), top_k=-1), "top_k: -1 is out of range"),
    ("short raw image", ClassifyRequest([RawImage(bytes(10), "images[0].pixels")]),
     "images[0].pixels: has 10 bytes"),
    ("undecodable", ClassifyRequest([EncodedImage(b"GIF89a", "images[0].encoded")]),
     "images[0].encoded: not a PNG or JPEG image"),
]


@pytest.mark.parametrize(("case", "request_", "message"), BAD, ids=[c[0] for c in BAD])
async def test_bad_requests_are_invalid_input_and_reach_no_model(
        plane: Plane, case: str, request_: ClassifyRequest, message: str) -> None:
    await plane.load("mnist", 1)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        await plane.dataplane.classify(request_)
    assert plane.calls() == []


async def test_a_wrong_model_costs_no_decoding(plane: Plane) -> None:
    await plane.load("mnist", 1)
    request = ClassifyRequest([EncodedImage(png(0), "images[0].encoded")], model="fashion")
    with pytest.raises(ModelNotFound, match="available models: mnist"):
        await plane.dataplane.classify(request)
    assert plane.decoder.jobs == 0


async def test_readiness_follows_loads_and_the_drain(plane: Plane) -> None:
    assert plane.dataplane.live() and not plane.dataplane.ready()
    assert not plane.dataplane.model_ready("mnist")
    with pytest.raises(ModelUnavailable, match="no model is loaded yet"):
        await plane.dataplane.classify(ClassifyRequest(grey(0)))
    await plane.load("mnist", 3)
    assert plane.dataplane.ready()
    assert plane.dataplane.model_ready("") and plane.dataplane.model_ready("mnist", 3)
    assert not plane.dataplane.model_ready("mnist", 2)
    assert not plane.dataplane.model_ready("Bad Name")
    plane.dataplane.drain()
    assert not plane.dataplane.ready() and not plane.dataplane.model_ready("mnist")
    assert plane.dataplane.live()


async def test_metadata_of_the_server_and_of_a_model(plane: Plane) -> None:
    await plane.load("mnist", 1)
    await plane.load("mnist", 4)
    server = plane.dataplane.metadata()
    assert server.name == "digits" and server.version
    metadata = plane.dataplane.model_metadata("")
    assert (metadata.name, metadata.version, metadata.versions, metadata.platform) == (
        "mnist", 4, [4, 1], PLATFORM)
    assert metadata.labels == LABELS
    assert [(s.name, s.dtype, list(s.shape)) for s in metadata.inputs] == [
        ("pixels", "uint8", [-1, 28, 28])]
    assert [(s.name, s.dtype, list(s.shape)) for s in metadata.outputs] == [
        ("probabilities", "float32", [-1, 10])]
    assert plane.dataplane.model_metadata("mnist", 1).version == 1
    assert [m.name for m in plane.dataplane.models()] == ["mnist"]
    assert plane.dataplane.model_status("").default_version == 4


async def test_model_calls_are_counted_by_version_and_result(plane: Plane) -> None:
    await plane.load("mnist", 1)
    await plane.dataplane.classify(ClassifyRequest(grey(0, 130, 255)))
    with plane.registry.acquire("mnist") as version:
        predictor = cast(DirectPredictor, version.predictor)

    async def broken(pixels: np.ndarray, deadline: float | None = None) -> np.ndarray:
        raise RuntimeError("the graph failed")

    predictor.predict = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await plane.dataplane.classify(ClassifyRequest(grey(0)))
    sample = plane.metrics.registry.get_sample_value
    calls = {"model": "mnist", "version": "1"}
    assert sample("digits_model_calls_total", calls | {"result": "ok"}) == 1
    assert sample("digits_model_calls_total", calls | {"result": "failed"}) == 1
    plane.predictions.forget("mnist", 1)  # as on unload
    assert sample("digits_model_calls_total", calls | {"result": "failed"}) is None
    assert sample("digits_images_classified_total", calls) is None
