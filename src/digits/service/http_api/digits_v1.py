"""Our own API, digits.v1, over HTTP: the proto's JSON mapping (bytes as base64), so curl
can classify, list and describe models."""

from typing import TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from digits.service.dataplane import DataPlane
from digits.service.digits_v1.messages import classify_request, classify_response, model_status
from digits.service.domain import parse_version
from digits.service.errors import InvalidInput, echo
from digits.service.http_api.handling import deadline_of, endpoint
from digits.v1 import classifier_pb2

PROTOCOL = "digits.v1/http"
Parsed = TypeVar("Parsed", bound=Message)


def add_routes(app: web.Application, dataplane: DataPlane) -> None:
    handlers = _Handlers(dataplane)
    app.router.add_post("/digits/v1/classify", handlers.classify)
    app.router.add_post("/digits/v1/models/{name}:classify", handlers.classify)
    app.router.add_get("/digits/v1/models", handlers.list_models)
    app.router.add_get("/digits/v1/models/{name}", handlers.get_model)
    app.router.add_get("/digits/v1/models/{name}/versions/{version}/report/{filename}",
                       handlers.report_file)


class _Handlers:
    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    @endpoint(PROTOCOL, "Classify")
    async def classify(self, request: web.Request) -> web.Response:
        message = _parse(await request.read(), classifier_pb2.ClassifyRequest())
        name = request.match_info.get("name")
        if name is not None:
            if message.model and message.model != name:
                raise InvalidInput(f"model: the body names {echo(message.model)}, the path "
                                   f"{echo(name)}; name the model in one place")
            message.model = name
        answer = await self._dataplane.classify(classify_request(message, deadline_of(request)))
        return _json(classify_response(answer))

    @endpoint(PROTOCOL, "ListModels")
    async def list_models(self, request: web.Request) -> web.Response:
        return _json(classifier_pb2.ListModelsResponse(
            models=[model_status(status) for status in self._dataplane.models()]))

    @endpoint(PROTOCOL, "GetModel")
    async def get_model(self, request: web.Request) -> web.Response:
        return _json(model_status(self._dataplane.model_status(request.match_info["name"])))


    @endpoint(PROTOCOL, "GetReportFile")
    async def report_file(self, request: web.Request) -> web.Response:
        match = request.match_info
        found = await self._dataplane.report_file(
            match["name"], parse_version(match["version"], "version"), match["filename"])
        # A version's files never change: the card's sha256 is their ETag.
        etag = f'"{found.sha256}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache",
                   "X-Content-Type-Options": "nosniff"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=found.data, content_type=None,
                            headers={**headers, "Content-Type": found.content_type})


def _parse(body: bytes, message: Parsed) -> Parsed:
    """A message from its JSON mapping; InvalidInput naming what is wrong."""
    try:
        return json_format.Parse(body or b"{}", message)
    except (json_format.ParseError, UnicodeDecodeError) as error:
        raise InvalidInput(f"body: not a digits.v1 {message.DESCRIPTOR.name} in JSON "
                           f"({echo(str(error), 200)}); fields as in "
                           "protos/digits/v1/classifier.proto, bytes base64-encoded") from None


def _json(message: Message) -> web.Response:
    return web.json_response(json_format.MessageToDict(message,
                                                       preserving_proto_field_name=True))
