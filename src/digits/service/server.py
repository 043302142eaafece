"""Wiring of the server: gRPC (Classifier, health, reflection), registry, metrics, shutdown.

``create_server(settings)`` builds everything and binds the port; ``await server.start()``
starts serving while the registry loads models in the background; ``await
server.stop()`` drains (NOT_SERVING at once, in-flight requests finish within the grace
period) and releases everything. ``serve(settings)`` runs until SIGTERM or SIGINT.
"""

import asyncio
import concurrent.futures
import logging
import signal
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from digits.modelstore.saved_model import LoadedModel
from digits.service.batching import Batcher
from digits.service.health import CLASSIFIER_SERVICE, HealthReporter
from digits.service.interceptor import RequestInterceptor
from digits.service.metrics import ServiceMetrics
from digits.service.registry import ModelRegistry
from digits.service.servicer import ClassifierServicer
from digits.service.settings import ServingSettings, grpc_options
from digits.v1 import classifier_pb2_grpc

log = logging.getLogger(__name__)


class DigitsServer:
    """A running (or ready to run) classification server and everything it owns."""

    def __init__(self, settings: ServingSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.health = HealthReporter(settings.default_model)
        self._inference_executor = concurrent.futures.ThreadPoolExecutor(
            settings.inference_threads, "digits-inference")
        self._decode_executor = concurrent.futures.ThreadPoolExecutor(
            settings.inference_threads, "digits-decode")
        self.registry = ModelRegistry(
            settings.models,
            metrics=metrics,
            make_batcher=self._make_batcher,
            default_model=settings.default_model,
            poll_interval=settings.poll_interval,
            max_versions=settings.max_versions,
            on_health_change=self.health.update,
        )
        self._interceptor = RequestInterceptor(metrics)
        self.grpc_server = grpc.aio.server(
            interceptors=[self._interceptor],
            options=grpc_options(settings.max_message_bytes),
        )
        classifier_pb2_grpc.add_ClassifierServicer_to_server(
            ClassifierServicer(
                self.registry, metrics,
                max_images_per_request=settings.max_images_per_request,
                decode_executor=self._decode_executor),
            self.grpc_server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.grpc_server)
        reflection.enable_server_reflection(
            (CLASSIFIER_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME),
            self.grpc_server)
        self.metrics_port = 0
        self._metrics_http: Any = None
        # Made when stop() begins, set when it has finished.
        self._stopping: asyncio.Event | None = None

    def _make_batcher(self, name: str, model: LoadedModel) -> Batcher:
        """One batcher per loaded version; its model calls run in the inference threads."""
        return Batcher(
            model.predict,
            model=name,
            metrics=self.metrics,
            executor=self._inference_executor,
            max_batch_size=self.settings.max_batch_size,
            batch_timeout=self.settings.batch_timeout,
            max_queue_images=self.settings.max_queue_images,
            enabled=self.settings.batching,
        )

    @property
    def in_flight(self) -> int:
        """Classifier requests being handled right now."""
        return self._interceptor.in_flight

    async def start(self) -> None:
        """Serve gRPC and metrics; models load in the background (health says when)."""
        await self.health.start()
        try:
            self._metrics_http, _ = start_http_server(
                self.settings.metrics_port, self.settings.host, self.metrics.registry)
        except OSError as error:
            raise OSError(
                f"cannot serve metrics on {self.settings.host}:{self.settings.metrics_port}: "
                f"{error.strerror or error}; pick a free port with --metrics-port (or "
                "DIGITS_METRICS_PORT)") from error
        self.metrics_port = self._metrics_http.server_port
        await self.grpc_server.start()
        await self.registry.start()

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING at once, let in-flight calls finish (at most ``grace`` s), release all."""
        if self._stopping is not None:  # a second call waits for the first
            await self._stopping.wait()
            return
        self._stopping = asyncio.Event()
        grace = self.settings.grace_period if grace is None else grace
        await self.health.shut_down()
        # New calls are refused from here on; running ones continue.
        stopping = asyncio.ensure_future(self.grpc_server.stop(grace))
        try:
            await asyncio.wait_for(self._interceptor.wait_idle(), grace)
        except TimeoutError:
            log.warning("grace period of %.1f s over with %d requests still running; "
                        "cancelling them", grace, self._interceptor.in_flight)
        # Only health Watch streams can be left: end them so the stop need not wait.
        self.health.servicer.end_watches()
        await stopping
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

    ``settings.port`` 0 lets the OS pick the port. Nothing runs until ``start()``.
    """
    server = DigitsServer(settings, metrics if metrics is not None else ServiceMetrics())
    address = f"{settings.host}:{settings.port}"
    port = server.grpc_server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}; pick a free port with --port "
                      "(or DIGITS_PORT)")
    return server, port


async def serve(settings: ServingSettings) -> None:
    """Run a server until SIGTERM or SIGINT, then drain and return."""
    server, port = create_server(settings)
    await server.start()
    log.info("serving gRPC on %s:%d, metrics on http://%s:%d/metrics, models from %s",
             settings.host, port, settings.host, server.metrics_port, settings.models)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop_requested.set)
    await stop_requested.wait()
    log.info("shutting down: NOT_SERVING, draining in-flight requests (grace %.1f s)",
             settings.grace_period)
    await server.stop()
    log.info("stopped")
