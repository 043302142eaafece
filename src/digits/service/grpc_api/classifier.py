"""The Classifier servicer: protos to arrays and back, nothing else.

Validation of pixels lives in ``images``, model routing in ``registry``, batching in
``batching``; errors are raised as domain errors and mapped to status codes by the
interceptor.
"""

import asyncio
import concurrent.futures
import time
from typing import Any

import grpc
import numpy as np

from digits.service import images, prediction_wire
from digits.service.errors import InvalidInput
from digits.service.metrics import PredictionMetrics, ServiceMetrics
from digits.service.registry import ModelRegistry, ModelStatus, VersionState
from digits.v1 import classifier_pb2, classifier_pb2_grpc

_STATES = {
    VersionState.LOADING: classifier_pb2.ModelVersionStatus.LOADING,
    VersionState.AVAILABLE: classifier_pb2.ModelVersionStatus.AVAILABLE,
    VersionState.UNLOADING: classifier_pb2.ModelVersionStatus.UNLOADING,
    VersionState.FAILED: classifier_pb2.ModelVersionStatus.FAILED,
}


class ClassifierServicer(classifier_pb2_grpc.ClassifierServicer):
    """Implements digits.v1.Classifier on top of the registry and its batchers."""

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: ServiceMetrics,
        *,
        max_images_per_request: int,
        decode_executor: concurrent.futures.Executor,
    ) -> None:
        self._registry = registry
        self._metrics = metrics
        self._max_images = max_images_per_request
        self._decode_executor = decode_executor
        self._recorders: dict[tuple[str, tuple[str, ...]], PredictionMetrics] = {}

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ClassifyResponse:
        """Classify a batch of images with one model version."""
        deadline = _deadline(context)
        # The model first: naming a wrong one costs no image decoding.
        with self._registry.acquire(request.model, request.version) as served:
            classes = len(served.labels)
            if not 0 <= request.top_k <= classes:
                raise InvalidInput(
                    f"top_k: {request.top_k} is out of range; send 0 (no ranking) to "
                    f"{classes} (every class of model {served.name!r})")
            pixels = await self._pixels(request)
            probabilities = await served.batcher.predict(pixels, deadline)
        response = classifier_pb2.ClassifyResponse(model=served.name, version=served.version)
        # Bulk-encoded: the message API would cost ~3 ms per 1,024 predictions.
        response.MergeFromString(
            prediction_wire.encoder_for(served.labels).encode(
                probabilities, request.top_k))
        self._record(served.name, probabilities, served.labels)
        return response

    async def ListModels(
        self, request: classifier_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ListModelsResponse:
        """Every model the server knows, with the state of each version."""
        return classifier_pb2.ListModelsResponse(
            models=[_model_status(status) for status in self._registry.statuses()])

    async def GetModel(
        self, request: classifier_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ModelStatus:
        """One model's versions, states, cards and signature."""
        return _model_status(self._registry.status(request.name))

    async def _pixels(self, request: classifier_pb2.ClassifyRequest) -> np.ndarray:
        """The request's images as uint8 [N, 28, 28], validated."""
        count = len(request.images)
        if count and request.packed_pixels:
            raise InvalidInput("images, packed_pixels: both are set; send the batch in one "
                               "of them only")
        if request.packed_pixels:
            pixels = images.packed_batch(request.packed_pixels)
            count = len(pixels)
        elif not count:
            raise InvalidInput("images: the batch is empty; send at least one image in "
                               "'images' or N*784 raw bytes in 'packed_pixels'")
        if count > self._max_images:
            raise InvalidInput(
                f"images: {count} images exceed the limit of {self._max_images} per "
                "request; split the batch into several requests")
        if request.packed_pixels:
            return pixels
        kinds = [image.WhichOneof("data") for image in request.images]
        if all(kind == "pixels" for kind in kinds):
            return images.raw_batch([image.pixels for image in request.images], "images")
        # Decoding PNG/JPEG is real work: keep it off the event loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._decode_executor, _decode_mixed, list(request.images), kinds)

    def _record(self, model: str, probabilities: np.ndarray, labels: tuple[str, ...]) -> None:
        """Images, predicted labels and confidences for drift monitoring."""
        recorder = self._recorders.get((model, labels))
        if recorder is None:  # one per model and label set: few, as few models load
            recorder = PredictionMetrics(self._metrics, model, labels)
            self._recorders[(model, labels)] = recorder
        recorder.record(probabilities)


def _decode_mixed(request_images: list[Any], kinds: list[Any]) -> np.ndarray:
    """Raw and encoded images of one request as uint8 [N, 28, 28] (in the decode pool)."""
    batch = np.empty((len(kinds), images.IMAGE_SIZE, images.IMAGE_SIZE), dtype=np.uint8)
    for index, (image, kind) in enumerate(zip(request_images, kinds, strict=True)):
        field = f"images[{index}]"
        if kind == "pixels":
            batch[index] = images.raw_pixels(image.pixels, f"{field}.pixels")
        elif kind == "encoded":
            batch[index] = images.decode_image(image.encoded, f"{field}.encoded")
        else:
            raise InvalidInput(f"{field}: holds no data; set 'pixels' (784 raw bytes) or "
                               "'encoded' (a PNG or JPEG file)")
    return batch


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as time.monotonic() seconds, or None when it has none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _model_status(status: ModelStatus) -> classifier_pb2.ModelStatus:
    message = classifier_pb2.ModelStatus(
        name=status.name, default_version=status.default_version)
    for version in status.versions:
        entry = message.versions.add(
            version=version.version, state=_STATES[version.state], error=version.error)
        if version.card is not None:
            entry.card.CopyFrom(version.card)
    if status.default_card is not None:
        message.input.CopyFrom(status.default_card.input)
        message.output.CopyFrom(status.default_card.output)
    return message
