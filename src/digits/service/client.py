"""A blocking Python client of the digits.v1.Classifier service.

Every call carries a deadline; UNAVAILABLE (server starting, no model loaded yet, or
shutting down) is retried with exponential backoff within that deadline.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.api import DEFAULT_MAX_MESSAGE_BYTES, IMAGE_SIZE, channel_options
from digits.service.targets import ROUND_ROBIN, channel_target
from digits.v1 import classifier_pb2, classifier_pb2_grpc

log = logging.getLogger(__name__)

Response = TypeVar("Response")


@dataclass(frozen=True)
class ClientTls:
    """How a client speaks TLS: the CA it trusts (None: the system's), its own certificate
    and key for mutual TLS, and the name to expect when it differs from the address."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return path.read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca), private_key=read(self.key),
            certificate_chain=read(self.cert))

DEFAULT_TIMEOUT = 10.0


class ClassifierClient:
    """Talks to a server, or to replicas in turn: ``target`` is ``host:port``, several of
    them comma-separated, or ``dns:///name:port`` (see ``targets``). Use as a context
    manager or call ``close()``."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        attempts: int = 8,
        initial_backoff: float = 0.1,
        max_backoff: float = 2.0,
        tls: "ClientTls | None" = None,
    ) -> None:
        if timeout <= 0 or attempts < 1:
            raise ValueError(f"timeout must be positive and attempts at least 1, got "
                             f"{timeout} and {attempts}")
        self.target = target
        self.timeout = timeout
        self._attempts = attempts
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        options: list[tuple[str, Any]] = [*channel_options(max_message_bytes),
                                          ("grpc.service_config", ROUND_ROBIN)]
        target = channel_target(target)
        if tls is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            if tls.server_name:  # the name the server's certificate is issued to
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self._channel = grpc.secure_channel(target, tls.credentials(), options=options)
        self._classifier = classifier_pb2_grpc.ClassifierStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __enter__(self) -> "ClassifierClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def classify(
        self, request: classifier_pb2.ClassifyRequest, timeout: float | None = None
    ) -> classifier_pb2.ClassifyResponse:
        """Send one ClassifyRequest as it is."""
        response: classifier_pb2.ClassifyResponse = self._call(
            self._classifier.Classify, request, timeout)
        return response

    def classify_pixels(
        self,
        pixels: np.ndarray,
        *,
        model: str = "",
        version: int = 0,
        top_k: int = 0,
        timeout: float | None = None,
    ) -> classifier_pb2.ClassifyResponse:
        """Classify uint8 [N, 28, 28] MNIST-form pixels (sent packed, the fast path)."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"pixels must be uint8 [N, 28, 28], got {pixels.dtype} "
                             f"{pixels.shape}")
        request = classifier_pb2.ClassifyRequest(
            model=model, version=version, top_k=top_k,
            packed_pixels=np.ascontiguousarray(pixels).tobytes())
        return self.classify(request, timeout)

    def classify_encoded(
        self,
        files: Sequence[bytes],
        *,
        model: str = "",
        version: int = 0,
        top_k: int = 0,
        timeout: float | None = None,
    ) -> classifier_pb2.ClassifyResponse:
        """Classify PNG/JPEG files (their bytes); the server converts them to MNIST form."""
        request = classifier_pb2.ClassifyRequest(
            model=model, version=version, top_k=top_k,
            images=[classifier_pb2.Image(encoded=data) for data in files])
        return self.classify(request, timeout)

    def list_models(self, timeout: float | None = None) -> classifier_pb2.ListModelsResponse:
        """Every model the server knows, with its versions."""
        response: classifier_pb2.ListModelsResponse = self._call(
            self._classifier.ListModels, classifier_pb2.ListModelsRequest(), timeout)
        return response

    def get_model(self, name: str = "", timeout: float | None = None) -> classifier_pb2.ModelStatus:
        """One model's versions, cards and signature ('' for the default model)."""
        response: classifier_pb2.ModelStatus = self._call(
            self._classifier.GetModel, classifier_pb2.GetModelRequest(name=name), timeout)
        return response

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """The health status name of ``service`` ('' for the server): SERVING, NOT_SERVING, ...

        Not retried: a health check reports the state of the moment.
        """
        response = self._health.Check(health_pb2.HealthCheckRequest(service=service),
                                      timeout=timeout or self.timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    def _call(self, method: Callable[..., Response], request: Any,
              timeout: float | None) -> Response:
        """Call with a deadline, retrying UNAVAILABLE with backoff while time remains."""
        deadline = time.monotonic() + (timeout or self.timeout)
        backoff = self._initial_backoff
        attempt = 1
        while True:
            remaining = deadline - time.monotonic()
            try:
                return method(request, timeout=max(remaining, 0.0))
            except grpc.RpcError as error:
                pause = min(backoff, self._max_backoff)
                if error.code() != grpc.StatusCode.UNAVAILABLE or (
                        attempt >= self._attempts or time.monotonic() + pause >= deadline):
                    raise
                log.debug("attempt %d: UNAVAILABLE (%s); retrying in %.2f s", attempt,
                          error.details(), pause)
                time.sleep(pause)
                backoff *= 2
                attempt += 1
