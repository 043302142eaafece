"""Helpers for the service tests: tiny real SavedModels, servers on loopback, polling.

The models are exported with the jobs' own ``export_model``, once per session, into a
template volume; tests copy a template version into their own volume with an atomic
rename, as a training job would publish it.
"""

import asyncio
import contextlib
import os
import shutil
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.modelstore.card import CARD_FILENAME
from digits.service.metrics import ServiceMetrics
from digits.service.server import DigitsServer, create_server
from digits.service.settings import ServingSettings
from digits.v1 import classifier_pb2, classifier_pb2_grpc

LABELS = [str(digit) for digit in range(10)]
# A model call of the "slow" template takes at least this long (a tf.data sleep, no CPU).
SLOW_MODEL_SECONDS = 0.5
WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Templates:
    """Version directories of the session's tiny models."""

    dense_a: Path
    dense_b: Path
    slow: Path
    weights_a: tuple[np.ndarray, np.ndarray]
    weights_b: tuple[np.ndarray, np.ndarray]


def export_templates(root: Path) -> Templates:
    """Export the tiny models (each well under a second) with the jobs' export code."""
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing as tf_data_testing

    from digits.jobs.export import DenseStackServingModule, export_model
    from digits.v1.model_card_pb2 import ModelCard

    def weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
        generator = np.random.default_rng(seed)
        return (generator.normal(0, 0.05, (784, 10)).astype(np.float32),
                generator.normal(0, 0.5, 10).astype(np.float32))

    class SlowModule(tf.Module):
        """The dense model behind a sleep, so requests stay in flight without using CPU.

        tf.data's sleep is the one sleep TensorFlow can save in a graph.
        """

        def __init__(self, dense: DenseStackServingModule) -> None:
            super().__init__()
            self.dense = dense

        @tf.function(input_signature=[
            tf.TensorSpec([None, 28, 28], tf.uint8, name="pixels")])
        def serve(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
            # The sleep applies to each element fetched and to the end-of-data fetch.
            delay = tf.data.Dataset.range(1).apply(
                tf_data_testing.sleep(int(SLOW_MODEL_SECONDS / 2 * 1e6)))
            for _ in delay:
                pass
            return self.dense.serve(pixels)

    weights_a, weights_b = weights(1), weights(2)
    dense_a = export_model(DenseStackServingModule([weights_a], "softmax"), root, "a",
                           ModelCard(labels=LABELS, experiment="test"))
    dense_b = export_model(DenseStackServingModule([weights_b], "softmax"), root, "b",
                           ModelCard(labels=LABELS, experiment="test"))
    slow = export_model(SlowModule(DenseStackServingModule([weights_a], "softmax")), root,
                        "slow", ModelCard(labels=LABELS, experiment="test"))
    return Templates(dense_a, dense_b, slow, weights_a, weights_b)


def expected_probabilities(weights: tuple[np.ndarray, np.ndarray],
                           pixels: np.ndarray) -> np.ndarray:
    """What the dense templates compute, in NumPy: softmax(pixels / 255 @ W + b)."""
    logits = pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0 @ weights[0] + weights[1]
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def install(template: Path, root: Path, name: str, version: int) -> Path:
    """Publish a copy of ``template`` as ``<root>/<name>/<version>`` atomically."""
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-test-{version}"
    shutil.copytree(template, staging)
    target = model_dir / str(version)
    os.rename(staging, target)
    return target


def corrupt_copy(template: Path, root: Path, name: str, version: int, how: str) -> Path:
    """Publish a broken version: 'sha256' (a file changed after the card was written),
    'savedmodel' (garbage graph with a card that matches it) or 'card' (garbled card)."""
    from digits.modelstore.card import file_digests, read_card, write_card

    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-corrupt-{version}"
    shutil.copytree(template, staging)
    if how == "sha256":
        (staging / "saved_model.pb").write_bytes(b"tampered")
    elif how == "savedmodel":
        (staging / "saved_model.pb").write_bytes(b"not a protobuf")
        card = read_card(staging)
        card.file_sha256.clear()
        card.file_sha256.update(file_digests(staging))
        write_card(staging, card)
    elif how == "card":
        (staging / CARD_FILENAME).write_text("{not json")
    else:
        raise ValueError(f"unknown corruption {how!r}")
    target = model_dir / str(version)
    os.rename(staging, target)
    return target


def loopback_settings(models: Path, **overrides: Any) -> ServingSettings:
    """Settings for a loopback server on OS-picked ports that notices changes quickly."""
    values: dict[str, Any] = dict(models=models, host="127.0.0.1", port=0, metrics_port=0,
                                  poll_interval=0.1, grace_period=10.0)
    values.update(overrides)
    return ServingSettings(**values)


@dataclass
class Running:
    """A started server and a channel to it."""

    server: DigitsServer
    port: int
    channel: grpc.aio.Channel
    metrics: ServiceMetrics

    @property
    def stub(self) -> Any:
        return classifier_pb2_grpc.ClassifierStub(self.channel)

    @property
    def health(self) -> Any:
        return health_pb2_grpc.HealthStub(self.channel)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def status(self, service: str = "") -> str:
        """The health status name of ``service``; SERVICE_UNKNOWN for names never set."""
        try:
            response = await self.health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return "SERVICE_UNKNOWN"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    async def classify(self, pixels: np.ndarray, **fields: Any) -> Any:
        return await self.stub.Classify(
            classifier_pb2.ClassifyRequest(packed_pixels=pixels.tobytes(), **fields),
            timeout=10)

    def scrape(self) -> str:
        """The /metrics page, as Prometheus would fetch it."""
        url = f"http://127.0.0.1:{self.server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())


@contextlib.asynccontextmanager
async def running_server(settings: ServingSettings) -> AsyncIterator[Running]:
    """Start a server for ``settings``; stop it (draining) on exit."""
    metrics = ServiceMetrics()
    server, port = create_server(settings, metrics)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(server, port, channel, metrics)
    finally:
        await channel.close()
        await server.stop(grace=5)


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str,
                   timeout: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_serving(running: Running, service: str = "", version: int | None = None,
                       model: str = "") -> None:
    """Wait until health says SERVING (and, if given, ``version`` answers by default)."""
    async def ready() -> bool:
        if await running.status(service) != "SERVING":
            return False
        if version is None:
            return True
        reply = await running.classify(np.zeros((1, 28, 28), np.uint8), model=model)
        return int(reply.version) == version

    await wait_for(ready, f"{service or 'the server'} SERVING"
                   + (f" with version {version}" if version else ""))


def sample_value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample's value from a Prometheus text page (None when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return float(sample.value)
    return None


async def wait_available(running: Running, model: str, versions: list[int]) -> None:
    """Wait until exactly ``versions`` of ``model`` are loaded (AVAILABLE)."""
    async def loaded() -> bool:
        try:
            status = await running.stub.GetModel(
                classifier_pb2.GetModelRequest(name=model), timeout=5)
        except grpc.aio.AioRpcError:
            return False
        available = classifier_pb2.ModelVersionStatus.AVAILABLE
        return sorted(v.version for v in status.versions if v.state == available) == sorted(
            versions)

    await wait_for(loaded, f"{model} versions {versions} AVAILABLE")
