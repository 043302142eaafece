"""The Open Inference Protocol v2 over HTTP (its REST form) over the data plane.

Readiness is carried by the status code (200 ready, 503 not), as Kubernetes probes read
it; everything else answers JSON, or with the binary tensor extension.
"""

from aiohttp import web

from digits.service.dataplane import DataPlane
from digits.service.domain import ClassifyRequest, parse_version
from digits.service.http_api.handling import deadline_of, endpoint
from digits.service.http_api.oip_body import parse_infer, render_infer
from digits.service.oip import tensors

PROTOCOL = "oip.v2/http"
EXTENSIONS = ("classification", "binary_tensor_data")


def add_routes(app: web.Application, dataplane: DataPlane) -> None:
    """The protocol's routes, for every model and optionally a pinned version."""
    handlers = _Handlers(dataplane)
    app.router.add_get("/v2/health/live", handlers.live)
    app.router.add_get("/v2/health/ready", handlers.ready)
    app.router.add_get("/v2", handlers.server_metadata)
    for model in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.router.add_get(model, handlers.model_metadata)
        app.router.add_get(f"{model}/ready", handlers.model_ready)
        app.router.add_post(f"{model}/infer", handlers.infer)


class _Handlers:
    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    @endpoint(PROTOCOL, "live")
    async def live(self, request: web.Request) -> web.Response:
        live = self._dataplane.live()
        return web.json_response({"live": live}, status=200 if live else 503)

    @endpoint(PROTOCOL, "ready")
    async def ready(self, request: web.Request) -> web.Response:
        ready = self._dataplane.ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    @endpoint(PROTOCOL, "server_metadata")
    async def server_metadata(self, request: web.Request) -> web.Response:
        metadata = self._dataplane.metadata()
        return web.json_response({"name": metadata.name, "version": metadata.version,
                                  "extensions": list(EXTENSIONS)})

    @endpoint(PROTOCOL, "model_ready")
    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        ready = self._dataplane.model_ready(name, version)
        return web.json_response({"name": name, "ready": ready},
                                 status=200 if ready else 503)

    @endpoint(PROTOCOL, "model_metadata")
    async def model_metadata(self, request: web.Request) -> web.Response:
        metadata = self._dataplane.model_metadata(*_model(request))
        return web.json_response({
            "name": metadata.name, "versions": [str(v) for v in metadata.versions],
            "platform": metadata.platform,
            "inputs": [_spec(spec) for spec in tensors.input_specs()],
            "outputs": [_spec(spec) for spec in tensors.output_specs(len(metadata.labels))],
        })

    @endpoint(PROTOCOL, "infer")
    async def infer(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        body = parse_infer(await request.read(), request.headers.get("Inference-Header-"
                                                                     "Content-Length"))
        classification, field = tensors.classification_of(body.outputs)
        answer = await self._dataplane.classify(ClassifyRequest(
            images=tensors.request_images(body.inputs), model=name, version=version,
            label=body.version_label, request_id=body.id, top_k=classification,
            top_k_field=field or "top_k",
            deadline=deadline_of(request)))
        content, headers = render_infer(answer, tensors.output_tensor(answer, classification),
                                        body.id, body.binary_output)
        return web.Response(body=content, headers=headers)


def _model(request: web.Request) -> tuple[str, int]:
    """The model name and version (0: the newest) a path names."""
    return (request.match_info["name"],
            parse_version(request.match_info.get("version", ""), "version"))


def _spec(spec: tensors.TensorSpec) -> dict[str, object]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}
