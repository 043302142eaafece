"""digits.v1 messages to the data plane's domain types and back."""

import numpy as np

from digits.service import images
from digits.service.digits_v1 import prediction_wire
from digits.service.domain import (
    Classification,
    ClassifyRequest,
    EncodedImage,
    ImageInput,
    ModelStatus,
    RawImage,
    VersionState,
)
from digits.service.errors import InvalidInput
from digits.v1 import classifier_pb2

_STATES = {state: classifier_pb2.ModelVersionStatus.State.Value(state.name)
           for state in VersionState}


def classify_request(message: classifier_pb2.ClassifyRequest,
                     deadline: float | None) -> ClassifyRequest:
    """A ClassifyRequest message as the data plane's request."""
    return ClassifyRequest(images=request_images(message), model=message.model,
                           version=message.version, top_k=message.top_k, deadline=deadline,
                           label=message.version_label, request_id=message.request_id,
                           return_model_input=message.return_model_input)


def classify_response(answer: Classification) -> classifier_pb2.ClassifyResponse:
    """The data plane's answer as a ClassifyResponse message."""
    response = classifier_pb2.ClassifyResponse(model=answer.model, version=answer.version)
    # Bulk-encoded: the message API would cost ~3 ms per 1,024 predictions.
    response.MergeFromString(prediction_wire.encoder_for(answer.labels).encode(
        answer.probabilities, answer.top_k))
    if answer.model_input is not None:  # rare, asked for: the message API is fast enough
        for prediction, pixels in zip(response.predictions, answer.model_input, strict=True):
            prediction.model_input = pixels.tobytes()
    return response


def request_images(request: classifier_pb2.ClassifyRequest) -> np.ndarray | list[ImageInput]:
    """The request's images: an array when all are raw pixels, else one entry per image."""
    packed = request.packed_pixels  # each read of a bytes field copies it: read once
    if packed:
        if request.images:
            raise InvalidInput("images, packed_pixels: both are set; send the batch in one "
                               "of them only")
        return images.packed_batch(packed)
    kinds = [image.WhichOneof("data") for image in request.images]
    if all(kind == "pixels" for kind in kinds):
        return images.raw_batch([image.pixels for image in request.images], "images")
    items: list[ImageInput] = []
    for index, (image, kind) in enumerate(zip(request.images, kinds, strict=True)):
        if kind == "pixels":
            items.append(RawImage(image.pixels, f"images[{index}].pixels"))
        elif kind == "encoded":
            items.append(EncodedImage(image.encoded, f"images[{index}].encoded"))
        else:
            raise InvalidInput(f"images[{index}]: holds no data; set 'pixels' (784 raw bytes) "
                               "or 'encoded' (a PNG or JPEG file)")
    return items


def model_status(status: ModelStatus) -> classifier_pb2.ModelStatus:
    """A model's status as the ModelStatus message."""
    message = classifier_pb2.ModelStatus(
        name=status.name, default_version=status.default_version)
    for version in status.versions:
        entry = message.versions.add(
            version=version.version, state=_STATES[version.state], error=version.error)
        if version.card is not None:
            entry.card.CopyFrom(version.card)
        if version.gate is not None:
            gate = version.gate
            entry.gate.CopyFrom(classifier_pb2.GateResult(
                passed=gate.passed, reason=gate.reason, accuracy=gate.accuracy,
                examples=gate.examples, seconds=gate.seconds,
                golden_source=gate.golden_source, default_accuracy=gate.default_accuracy))
    message.version_labels.update(status.labels)
    message.pending_labels.update(status.pending_labels)
    message.canary_weight = status.canary_weight
    message.canary_halted = status.canary_halted
    if status.default_card is not None:
        message.input.CopyFrom(status.default_card.input)
        message.output.CopyFrom(status.default_card.output)
    return message
