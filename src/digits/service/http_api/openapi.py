"""The OpenAPI document of the HTTP port, served at ``/openapi.json``.

Written out rather than derived: the inference routes take hand-parsed bodies (binary
tensors), which no framework describes by itself. A test checks that every route the
application serves is documented here and every documented path is served.
"""

import importlib.metadata
from typing import Any

from aiohttp import web

PATH = "/openapi.json"
JSON = "application/json"
OIP = "Open Inference Protocol v2"
DIGITS = "digits.v1"
TF_SERVING = "TensorFlow Serving"

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string",
                                   "description": "What is wrong and how to fix it."}}}
_TENSOR_METADATA = {"type": "object", "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}}}}
_TENSOR = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}},
    "parameters": {"type": "object"}, "data": {"type": "array"}}}
_INFER_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "parameters": {"type": "object", "properties": {
        "version_label": {"type": "string", "description":
                          "A version label ('stable', 'canary', ...) instead of a version "
                          "in the path (this server's extension)."}}},
    "inputs": {"type": "array", "items": _TENSOR, "description":
               "One input: 'pixels' UINT8 [N, 28, 28], or 'images' BYTES [N] of base64 "
               "PNG or JPEG files (raw files with the binary tensor extension)."},
    "outputs": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "parameters": {"type": "object", "description":
                                                   "classification: k, binary_data: bool"}}}},
}}
_INFER_RESPONSE = {"type": "object", "properties": {
    "model_name": {"type": "string"}, "model_version": {"type": "string"},
    "id": {"type": "string"}, "outputs": {"type": "array", "items": _TENSOR}}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _get("Whether the server answers", "live")},
        "/v2/health/ready": {"get": _get("Whether a model can classify (503 when not)",
                                         "ready", not_ready=True)},
        "/v2": {"get": _get("Server name, version and extensions", "server metadata")},
    }
    paths.update(_digits_v1())
    paths.update(_tfserving())
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        parameters = _path_parameters(prefix)
        paths[prefix] = {"get": _get("A model's versions, platform, inputs and outputs",
                                     "model metadata", parameters, missing=True)}
        paths[f"{prefix}/ready"] = {"get": _get(
            "Whether the model (version) can classify (503 when not)", "model ready",
            parameters, not_ready=True)}
        paths[f"{prefix}/infer"] = {"post": _infer(parameters)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "digits", "version": importlib.metadata.version("digits"),
                 "description": "Handwritten-digit classification. Every route takes an "
                                "optional ?timeout=SECONDS; errors answer {\"error\": ...}."},
        "paths": paths,
    }


def _digits_v1() -> dict[str, Any]:
    """Our own API in the proto's JSON mapping (protos/digits/v1/classifier.proto)."""
    message = {"type": "object", "description": "A digits.v1 message in the proto's JSON "
               "mapping (protos/digits/v1/classifier.proto); bytes fields base64."}
    classify = {
        "tags": [DIGITS], "summary": "Classify images (a ClassifyRequest)",
        "parameters": [_timeout()],
        "requestBody": {"required": True, "content": {JSON: {"schema": message}}},
        "responses": {**_responses("A ClassifyResponse", missing=True, body=message),
                      "429": {"description": "The batching queue is full"},
                      "503": {"description": "No version of the model is loaded yet"},
                      "504": {"description": "The timeout passed"}},
    }
    named = _path_parameters("/{name}")
    return {
        "/digits/v1/classify": {"post": classify},
        "/digits/v1/models/{name}:classify": {"post": {**classify, "parameters": [
            *named, _timeout()]}},
        "/digits/v1/models": {"get": {
            "tags": [DIGITS], "summary": "Every model with its versions (ListModelsResponse)",
            "parameters": [_timeout()], "responses": _responses("ListModelsResponse",
                                                                body=message)}},
        "/digits/v1/models/{name}": {"get": {
            "tags": [DIGITS], "summary": "One model's versions, cards and signature",
            "parameters": [*named, _timeout()],
            "responses": _responses("ModelStatus", missing=True, body=message)}},
        "/digits/v1/models/{name}/versions/{version}/report/{filename}": {"get": {
            "tags": [DIGITS], "summary": "A plot or table of the training run that made a "
            "loaded version (the card lists them under report/, with their sha256)",
            "parameters": [*_path_parameters("/{name}/{version}"), {
                "name": "filename", "in": "path", "required": True,
                "schema": {"type": "string"}}, _timeout()],
            "responses": {
                "200": {"description": "The file as exported; its ETag is its sha256",
                        "content": {"image/png": {}, "text/markdown": {}}},
                "404": {"description": "No such model, loaded version or report file"},
                "503": {"description": "The file changed on disk since export"}}}},
        "/metrics": {"get": {
            "tags": [DIGITS], "summary": "The service's Prometheus metrics (the same as on "
            "the metrics port), for the web page's live panel",
            "responses": {"200": {"description": "Prometheus text exposition format",
                                  "content": {"text/plain": {}}}}}},
    }


def _tfserving() -> dict[str, Any]:
    """TensorFlow Serving's REST API (its own JSON: proto field names, b64 files)."""
    body = {"type": "object", "description":
            'TensorFlow Serving\'s JSON: {"instances": [...]} (row form; each a 28x28 list '
            'of pixels or {"b64": FILE}) or {"inputs": {"pixels": [...]}} (columnar form); '
            'optional "signature_name": "serving_default".'}
    paths: dict[str, Any] = {}
    for prefix in ("/v1/models/{name}", "/v1/models/{name}/versions/{version}",
                   "/v1/models/{name}/labels/{label}"):
        parameters = [*_path_parameters(prefix), _timeout()]
        paths[prefix] = {"get": {
            "tags": [TF_SERVING], "summary": "Versions and their states",
            "parameters": parameters, "responses": _responses("GetModelStatusResponse",
                                                              missing=True)}}
        paths[f"{prefix}/metadata"] = {"get": {
            "tags": [TF_SERVING], "summary": "The serving signature",
            "parameters": parameters, "responses": _responses("GetModelMetadataResponse",
                                                              missing=True)}}
        paths[f"{prefix}:predict"] = {"post": {
            "tags": [TF_SERVING], "summary": "Probabilities per image",
            "parameters": parameters,
            "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
            "responses": _responses('{"predictions": [...]} or {"outputs": [...]}',
                                    missing=True)}}
    return paths


def add_route(app: web.Application) -> None:
    app.router.add_get(PATH, _serve)


async def _serve(request: web.Request) -> web.Response:
    return web.json_response(document())


def _path_parameters(prefix: str) -> list[dict[str, Any]]:
    names = ["name"] + [name for name in ("version", "label") if f"{{{name}}}" in prefix]
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in names]


def _timeout() -> dict[str, Any]:
    return {"name": "timeout", "in": "query", "required": False,
            "schema": {"type": "number", "exclusiveMinimum": 0},
            "description": "Seconds before the request is given up (504)."}


def _responses(ok: str, *, missing: bool = False, not_ready: bool = False,
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    error = {"content": {JSON: {"schema": _ERROR}}}
    responses: dict[str, Any] = {
        "200": {"description": ok, "content": {JSON: {"schema": body or {"type": "object"}}}},
        "400": {"description": "Bad input; the message names the field and the fix", **error},
    }
    if missing:
        responses["404"] = {"description": "No such model or version", **error}
    if not_ready:
        responses["503"] = {"description": "Not ready", "content": {
            JSON: {"schema": {"type": "object"}}}}
    return responses


def _get(summary: str, what: str, parameters: list[dict[str, Any]] | None = None,
         missing: bool = False, not_ready: bool = False) -> dict[str, Any]:
    return {"tags": [OIP], "summary": summary,
            "parameters": [*(parameters or []), _timeout()],
            "responses": _responses(what, missing=missing, not_ready=not_ready)}


def _infer(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    responses = _responses("The probabilities, or the classes asked for", missing=True,
                           body=_INFER_RESPONSE)
    responses["200"]["content"]["application/octet-stream"] = {
        "schema": {"type": "string", "format": "binary"}}
    responses.update({
        "413": {"description": "The body exceeds --max-message-bytes"},
        "429": {"description": "The batching queue is full; retry with backoff"},
        "503": {"description": "No version of the model is loaded yet"},
        "504": {"description": "The timeout passed"},
    })
    return {
        "tags": [OIP], "summary": "Classify images with a model (version)",
        "parameters": [*parameters, _timeout(), {
            "name": "Inference-Header-Content-Length", "in": "header", "required": False,
            "schema": {"type": "integer"},
            "description": "Binary tensor extension: the JSON header's length; binary "
                           "input data follows it."}],
        "requestBody": {"required": True, "content": {
            JSON: {"schema": _INFER_REQUEST},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": responses,
    }
