"""The protocol-neutral core every front end calls: classify, metadata, readiness.

Front ends convert their wire messages to the types of ``domain`` and back, and map
``errors`` to their status codes; what a request may hold is checked here, once.
"""

import asyncio
import concurrent.futures
import importlib.metadata
import time

import numpy as np

from digits.api import IMAGE_SIZE
from digits.modelstore.signature import input_spec, output_spec
from digits.service import decoding
from digits.service.domain import (
    Classification,
    ClassifyRequest,
    ModelMetadata,
    ModelStatus,
    ServerMetadata,
)
from digits.service.errors import DeadlineExpired, InvalidInput, ModelUnavailable, Overloaded
from digits.service.models.canary import CanaryGuard
from digits.service.models.registry import ModelRegistry
from digits.service.prediction_metrics import PredictionRecorder
from digits.service.report_reading import ReportFile, read_report_file
from digits.service.settings import LimitSettings

PLATFORM = "tensorflow_savedmodel"


class DataPlane:
    """Classifies batches with the registry's versions; describes the server and its models."""

    def __init__(self, registry: ModelRegistry, *, default_model: str, limits: LimitSettings,
                 decode_executor: concurrent.futures.Executor,
                 predictions: PredictionRecorder, canary: CanaryGuard | None = None) -> None:
        self._registry = registry
        self._default_model = default_model
        self._max_images = limits.max_images_per_request
        self._limits = limits
        self._decode_executor = decode_executor
        self._predictions = predictions
        self._canary = canary
        self._draining = False

    async def classify(self, request: ClassifyRequest) -> Classification:
        """Probabilities of every image of the request from one model version.

        Raises the errors of ``errors``: InvalidInput naming the field and the fix,
        ModelNotFound, ModelUnavailable, Overloaded, DeadlineExpired.
        """
        if isinstance(request.images, np.ndarray):
            _check_pixels(request.images)
        count = len(request.images)
        if not count:
            raise InvalidInput("images: the batch is empty; send at least one image")
        if count > self._max_images:
            raise InvalidInput(
                f"images: {count} images exceed the limit of {self._max_images} per "
                "request; split the batch into several requests")
        # The model first: naming a wrong one costs no image decoding.
        with self._registry.acquire(request.model or self._default_model,
                                    request.version, request.label,
                                    request.request_id) as version:
            classes = len(version.labels)
            if not 0 <= request.top_k <= classes:
                raise InvalidInput(
                    f"{request.top_k_field}: {request.top_k} is out of range; send 0 (no "
                    f"ranking) to {classes} (every class of model {version.name!r})")
            pixels = await self._pixels(request)
            assert version.predictor is not None  # every loaded version has one
            try:
                probabilities = await version.predictor.predict(pixels, request.deadline)
            except (DeadlineExpired, Overloaded, ModelUnavailable):
                raise  # the load's or the client's, not the version's
            except Exception:
                self._predictions.failed(version.name, version.version)
                if self._canary is not None:
                    self._canary.observe(version.name, version.version, None)
                raise
        self._predictions.record(version.name, version.version, version.labels, probabilities)
        if self._canary is not None:
            self._canary.observe(version.name, version.version, probabilities)
        return Classification(version.name, version.version, version.labels, probabilities,
                              request.top_k,
                              pixels if request.return_model_input else None)

    async def _pixels(self, request: ClassifyRequest) -> np.ndarray:
        """The request's images as uint8 [N, 28, 28]: as sent, or decoded off the loop,
        one job at a time, so that requests take turns in the decode threads."""
        if isinstance(request.images, np.ndarray):
            return request.images
        items = list(request.images)
        out = np.empty((len(items), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        budget = decoding.Budget(self._limits.max_request_pixels,
                                 self._limits.max_image_pixels)
        loop = asyncio.get_running_loop()
        start = 0
        while start < len(items):
            if request.deadline is not None and time.monotonic() >= request.deadline:
                raise DeadlineExpired("the deadline passed while waiting to decode the "
                                      "images; they were not decoded")
            start = await loop.run_in_executor(self._decode_executor, decoding.decode_some,
                                               items, start, out, budget, request.deadline)
        return out

    # -- metadata and readiness ---------------------------------------------------------

    def live(self) -> bool:
        """The process is up and answering (always, while it can answer)."""
        return True

    def ready(self) -> bool:
        """Some model version can serve, and the server is not shutting down."""
        return not self._draining and self._registry.serving

    def model_ready(self, name: str, version: int = 0) -> bool:
        """The named model (and version; 0: any) can serve right now."""
        loaded = self._registry.loaded_versions(name or self._default_model)
        return not self._draining and (version in loaded if version else bool(loaded))

    def drain(self) -> None:
        """Report not ready from now on (the server is shutting down)."""
        self._draining = True

    def metadata(self) -> ServerMetadata:
        """The server's name and version."""
        return ServerMetadata("digits", importlib.metadata.version("digits"))

    def models(self) -> list[ModelStatus]:
        """Every model the server knows, with the state of each version."""
        return self._registry.statuses()

    def model_status(self, name: str) -> ModelStatus:
        """One model's versions and states ('' for the default model)."""
        return self._registry.status(name or self._default_model)

    async def report_file(self, name: str, version: int, filename: str) -> ReportFile:
        """A report file (plot, table) of one loaded version (0: the default version)."""
        with self._registry.acquire(name or self._default_model, version) as record:
            assert record.model is not None  # every loaded version has one
            return await asyncio.to_thread(
                read_report_file, record.model.path, record.model.card, filename,
                f"version {record.version} of {record.name!r}")

    def model_metadata(self, name: str, version: int = 0, label: str = "") -> ModelMetadata:
        """Signature and labels of one loaded version (0 and no ``label``: the default)."""
        with self._registry.acquire(name or self._default_model, version, label) as record:
            labels = record.labels
        versions = self._registry.loaded_versions(record.name)
        return ModelMetadata(
            name=record.name, version=record.version, versions=versions[::-1],
            platform=PLATFORM, labels=labels,
            inputs=[input_spec()], outputs=[output_spec(len(labels))])


def _check_pixels(pixels: np.ndarray) -> None:
    """Refuse arrays the model could not take."""
    if pixels.dtype != np.uint8 or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise InvalidInput(
            f"images: expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}] pixels, got "
            f"{pixels.dtype} {list(pixels.shape)}; send 28x28 8-bit images")
