"""TensorFlow Serving's REST API over the data plane: model status, metadata and predict,
in its row (``instances``) and columnar (``inputs``) forms, files as ``{"b64": ...}``."""

import base64
import binascii
import json
from typing import Any

import numpy as np
from aiohttp import web
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message
from tensorflow_serving.apis import get_model_metadata_pb2

from digits.service import tensor_input
from digits.service.dataplane import DataPlane
from digits.service.domain import ClassifyRequest, EncodedImage, parse_version
from digits.service.errors import InvalidInput
from digits.service.http_api.handling import deadline_of, endpoint
from digits.service.tfserving import messages

PROTOCOL = "tfserving/http"
_FORMS = ('send {"instances": [...]} (one 28x28 list of pixels, or {"b64": FILE}, per '
          'image) or {"inputs": {"pixels": [...]}} / {"inputs": {"images": [...]}}')


def add_routes(app: web.Application, dataplane: DataPlane) -> None:
    handlers = _Handlers(dataplane)
    for model in ("/v1/models/{name}", "/v1/models/{name}/versions/{version}",
                  "/v1/models/{name}/labels/{label}"):
        app.router.add_get(model, handlers.status)
        app.router.add_get(f"{model}/metadata", handlers.metadata)
        app.router.add_post(f"{model}:predict", handlers.predict)


class _Handlers:
    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    @endpoint(PROTOCOL, "GetModelStatus")
    async def status(self, request: web.Request) -> web.Response:
        name, version, label = _model(request)
        if label:  # the version it routes to now
            version = self._dataplane.model_metadata(name, 0, label).version
        return _json(messages.model_status(self._dataplane.model_status(name), version))

    @endpoint(PROTOCOL, "GetModelMetadata")
    async def metadata(self, request: web.Request) -> web.Response:
        metadata = self._dataplane.model_metadata(*_model(request))
        packed = any_pb2.Any()
        packed.Pack(messages.signature_map(metadata))
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=messages.answer_spec(metadata.name, metadata.version))
        response.metadata["signature_def"].CopyFrom(packed)
        return _json(response)

    @endpoint(PROTOCOL, "Predict")
    async def predict(self, request: web.Request) -> web.Response:
        name, version, label = _model(request)
        body = _body(await request.read())
        messages.check_signature(body.get("signature_name", ""), "signature_name")
        rows = "instances" in body
        if rows == ("inputs" in body):
            raise InvalidInput(f"body: {_FORMS}, one of the two")
        images = _instances(body["instances"]) if rows else _columns(body["inputs"])
        answer = await self._dataplane.classify(ClassifyRequest(
            images=images, model=name, version=version, label=label,
            deadline=deadline_of(request)))
        key = "predictions" if rows else "outputs"
        return web.json_response({key: answer.probabilities.tolist()})


def _model(request: web.Request) -> tuple[str, int, str]:
    """The model, version and label a TensorFlow Serving URL names."""
    return (request.match_info["name"],
            parse_version(request.match_info.get("version", ""), "version"),
            request.match_info.get("label", ""))


def _json(message: Message) -> web.Response:
    return web.json_response(json_format.MessageToDict(
        message, preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True))


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"body: not JSON ({error}); {_FORMS}") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"body: not a JSON object; {_FORMS}")
    return body


def _instances(instances: Any) -> np.ndarray | list[EncodedImage]:
    """The row form: one entry per image, named by the input or not."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f"instances: send a non-empty list; {_FORMS}")
    named = [_unnamed(instance) for instance in instances]
    kinds = {kind for kind, _ in named}
    if len(kinds) != 1:
        raise InvalidInput("instances: mix pixels and files; send one kind per request")
    if kinds == {messages.IMAGES}:
        return tensor_input.files([_file(value, f"instances[{index}]")
                                   for index, (_, value) in enumerate(named)],
                                  [len(named)], "instances")
    return _pixels([value for _, value in named], "instances")


def _unnamed(instance: Any) -> tuple[str, Any]:
    """An instance as (input name, value): a bare list is pixels, {"b64"} a file."""
    if isinstance(instance, dict) and set(instance) == {"b64"}:
        return messages.IMAGES, instance
    if isinstance(instance, dict) and len(instance) == 1:
        name, value = next(iter(instance.items()))
        if name in (messages.PIXELS, messages.IMAGES):
            return name, value
    if isinstance(instance, list):
        return messages.PIXELS, instance
    raise InvalidInput(f"instances: an entry is neither a 28x28 list, nor {{'b64': ...}}, "
                       f"nor named '{messages.PIXELS}' or '{messages.IMAGES}'; {_FORMS}")


def _columns(inputs: Any) -> np.ndarray | list[EncodedImage]:
    """The columnar form: the input by name, or a bare array of pixels."""
    if isinstance(inputs, list):
        return _pixels(inputs, "inputs")
    if isinstance(inputs, dict) and set(inputs) == {messages.PIXELS}:
        return _pixels(inputs[messages.PIXELS], "inputs['pixels']")
    if isinstance(inputs, dict) and set(inputs) == {messages.IMAGES}:
        files = inputs[messages.IMAGES]
        if not isinstance(files, list):
            raise InvalidInput("inputs['images']: send a list of {\"b64\": FILE}")
        return tensor_input.files([_file(value, f"inputs['images'][{index}]")
                                   for index, value in enumerate(files)],
                                  [len(files)], "inputs['images']")
    raise InvalidInput(f"inputs: {_FORMS}")


def _pixels(values: Any, field: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except ValueError:
        raise InvalidInput(f"{field}: nested lists of unequal lengths; send N lists of 28 "
                           "rows of 28 pixels") from None
    return tensor_input.pixels(array.ravel().tolist(), array.shape, field)


def _file(value: Any, field: str) -> bytes:
    if not (isinstance(value, dict) and isinstance(value.get("b64"), str)):
        raise InvalidInput(f"{field}: send a file as {{\"b64\": BASE64}}")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except binascii.Error:
        raise InvalidInput(f"{field}.b64: not base64") from None
