"""Wiring of the server: registry and its listeners, watcher, data plane, gRPC, HTTP,
metrics.

``create_server(settings)`` builds everything and binds the port; ``await server.start()``
starts serving while the watcher loads models in the background; ``await
server.stop()`` drains (NOT_SERVING at once, in-flight requests finish within the grace
period) and releases everything. ``serve(settings)`` runs until SIGTERM or SIGINT.
"""

import asyncio
import concurrent.futures
import logging
import signal
from typing import Any

from prometheus_client import start_http_server

from digits.modelstore.tensorflow_threads import configure_threads
from digits.service import descriptors
from digits.service.dataplane import DataPlane
from digits.service.grpc_api import PROTOCOLS, create_grpc_server, server_options
from digits.service.grpc_api.health import HealthReporter
from digits.service.grpc_api.interceptor import RequestInterceptor
from digits.service.http_api.server import HttpServer
from digits.service.metrics import ServiceMetrics
from digits.service.models.canary import CanaryGuard
from digits.service.models.hooks import (
    HeapHook,
    PredictionSeries,
    PredictorHook,
    VersionGauges,
)
from digits.service.models.registry import ModelRegistry
from digits.service.models.watcher import VolumeWatcher
from digits.service.prediction_metrics import PredictionRecorder
from digits.service.settings import ServingSettings
from digits.service.tls import CertificateStore, HttpContext, grpc_credentials

log = logging.getLogger(__name__)


class DigitsServer:
    """A running (or ready to run) classification server and everything it owns."""

    def __init__(self, settings: ServingSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        # Before the watcher loads a model: TensorFlow fixes its pools when it starts.
        configure_threads(settings.batching.intra_op_threads,
                          settings.batching.inter_op_threads)
        threads = settings.batching.inference_threads
        self._inference_executor = concurrent.futures.ThreadPoolExecutor(
            threads, "digits-inference")
        self._decode_executor = concurrent.futures.ThreadPoolExecutor(threads, "digits-decode")
        self.health = HealthReporter(settings.volume.default_model, services=list(PROTOCOLS))
        self._heap = HeapHook()
        predictions = PredictionRecorder(metrics)
        self.registry = ModelRegistry([
            PredictorHook(settings.batching, metrics, self._inference_executor),
            self._heap, VersionGauges(metrics), PredictionSeries(predictions), self.health])
        self.watcher = VolumeWatcher(settings.volume, self.registry, metrics)
        self.dataplane = DataPlane(
            self.registry, default_model=settings.volume.default_model,
            limits=settings.limits, decode_executor=self._decode_executor,
            predictions=predictions,
            canary=CanaryGuard(settings.volume, self.registry, metrics))
        self._interceptor = RequestInterceptor(metrics, PROTOCOLS)
        self.max_connections = descriptors.connections_within(
            settings.connections.max_connections, descriptors.raise_soft_limit())
        self.grpc_server = create_grpc_server(
            self.dataplane, self.health, self._interceptor,
            server_options(settings.limits, settings.connections, self.max_connections,
                           settings.network.grace_period))
        self.http = HttpServer(self.dataplane, metrics, settings, self.max_connections)
        # Read (and checked) now, so that bad files stop the start with their names.
        self.tls = CertificateStore(settings.tls) if settings.tls.enabled else None
        self.metrics_port = 0
        self._metrics_http: Any = None
        # Made when stop() begins, set when it has finished.
        self._stopping: asyncio.Event | None = None

    @property
    def in_flight(self) -> int:
        """Inference requests (gRPC and HTTP) being handled right now."""
        return self._interceptor.in_flight + self.http.handling.in_flight

    async def start(self) -> None:
        """Serve gRPC and metrics; models load in the background (health says when)."""
        network = self.settings.network
        await self.health.start()
        try:
            self._metrics_http, _ = start_http_server(
                network.metrics_port, network.host, self.metrics.registry)
        except OSError as error:
            raise OSError(
                f"cannot serve metrics on {network.host}:{network.metrics_port}: "
                f"{error.strerror or error}; pick a free port with --metrics-port (or "
                "DIGITS_METRICS_PORT)") from error
        self.metrics_port = self._metrics_http.server_port
        await self.grpc_server.start()
        await self.http.start(HttpContext(self.tls) if self.tls else None)
        await self.watcher.start()

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING at once, let in-flight calls finish (at most ``grace`` s), release all."""
        if self._stopping is not None:  # a second call waits for the first
            await self._stopping.wait()
            return
        self._stopping = asyncio.Event()
        grace = self.settings.network.grace_period if grace is None else grace
        self.dataplane.drain()
        await self.health.shut_down()
        # New calls and connections are refused from here on; running ones continue.
        stopping = [asyncio.ensure_future(self.grpc_server.stop(grace)),
                    asyncio.ensure_future(self.http.stop())]
        try:
            await asyncio.wait_for(asyncio.gather(
                self._interceptor.wait_idle(), self.http.handling.wait_idle()), grace)
        except TimeoutError:
            log.warning("grace period of %.1f s over with %d requests still running; "
                        "cancelling them", grace, self.in_flight)
        # Only health Watch streams can be left: end them so the stop need not wait.
        self.health.servicer.end_watches()
        await asyncio.gather(*stopping)
        await self.watcher.close()
        self._heap.stop()  # no collection per unload below: one thaw suffices
        await self.registry.close()
        if self._metrics_http is not None:
            # shutdown() waits for the HTTP thread's next poll (up to 0.5 s): not on the loop.
            await asyncio.to_thread(self._metrics_http.shutdown)
            self._metrics_http.server_close()
        self._inference_executor.shutdown(wait=True)
        self._decode_executor.shutdown(wait=True)
        self._stopping.set()


def create_server(
    settings: ServingSettings, metrics: ServiceMetrics | None = None
) -> tuple[DigitsServer, int]:
    """Build a server for ``settings`` and bind its gRPC port; returns it and the port.

    ``settings.network.port`` 0 lets the OS pick the port. Nothing runs until ``start()``.
    """
    server = DigitsServer(settings, metrics if metrics is not None else ServiceMetrics())
    network = settings.network
    address = f"{network.host}:{network.port}"
    if server.tls is not None:
        port = server.grpc_server.add_secure_port(address, grpc_credentials(server.tls))
    else:
        port = server.grpc_server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}; pick a free port with --port "
                      "(or DIGITS_PORT)")
    server.http.bind(network.host, network.http_port)
    return server, port


async def serve(settings: ServingSettings) -> None:
    """Run a server until SIGTERM or SIGINT, then drain and return."""
    server, port = create_server(settings)
    await server.start()
    host = settings.network.host
    scheme = "https" if server.tls else "http"
    log.info("serving gRPC on %s:%d, HTTP on %s://%s:%d, metrics on "
             "http://%s:%d/metrics, models from %s%s", host, port, scheme, host,
             server.http.port, host, server.metrics_port, settings.volume.models,
             " (TLS" + (", client certificates required)" if settings.tls.tls_client_ca
                        else ")") if server.tls else "")
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop_requested.set)
    await stop_requested.wait()
    log.info("shutting down: NOT_SERVING, draining in-flight requests (grace %.1f s)",
             settings.network.grace_period)
    await server.stop()
    log.info("stopped")
