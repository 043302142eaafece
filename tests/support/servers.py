"""A real server on OS-picked loopback ports, a channel to it, and waits for its state."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.service.metrics import ServiceMetrics
from digits.service.server import DigitsServer, create_server
from digits.service.settings import ServingSettings
from digits.v1 import classifier_pb2, classifier_pb2_grpc

from support.polling import wait_for
from support.prometheus import scrape


def loopback_settings(models: Path, **overrides: Any) -> ServingSettings:
    """Settings for a loopback server on OS-picked ports that notices changes quickly."""
    values: dict[str, Any] = dict(models=models, host="127.0.0.1", port=0, http_port=0,
                                  metrics_port=0, poll_interval=0.1, grace_period=10.0)
    values.update(overrides)
    return ServingSettings.from_options(**values)


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

    @property
    def http_target(self) -> str:
        return f"127.0.0.1:{self.server.http.port}"

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
        return scrape(self.server.metrics_port)


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


async def model_status(running: Running, model: str = "mnist") -> Any:
    """GetModel's answer, or None while the server cannot give one (nothing loaded yet)."""
    try:
        return await running.stub.GetModel(classifier_pb2.GetModelRequest(name=model),
                                           timeout=5)
    except grpc.aio.AioRpcError:
        return None
