"""The HTTP port through a slow model: a timeout cuts a request in the model (504), and
a shutdown lets running requests finish while new connections are refused."""

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support.models import SLOW_MODEL_SECONDS, install
from support.polling import wait_for
from support.servers import loopback_settings, running_server, wait_serving

ONE_IMAGE = json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8",
                                    "shape": [1, 28, 28], "data": [0] * 784}]}).encode()


def post(target: str, path: str, timeout: float = 30) -> tuple[int, Any]:
    """POST one image; the status and the JSON answer (urllib: a plain HTTP client)."""
    request = urllib.request.Request(f"http://{target}{path}", data=ONE_IMAGE,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def slow_server(model_templates: Any, models_root: Path) -> Any:
    """A server whose only model takes SLOW_MODEL_SECONDS per call, one call at a time."""
    install(model_templates.slow, models_root, "mnist", 1)
    return running_server(loopback_settings(models_root, inference_threads=1))


async def test_a_timeout_cuts_a_request_waiting_for_the_model(
        model_templates: Any, models_root: Path) -> None:
    async with slow_server(model_templates, models_root) as running:
        await wait_serving(running, "mnist")
        timeout = SLOW_MODEL_SECONDS / 4
        status, answer = await asyncio.to_thread(
            post, running.http_target, f"/v2/models/mnist/infer?timeout={timeout}")
        assert status == 504, answer
        assert f"the request's timeout was {timeout:g} s" in answer["error"]
        # Without one, the same request is answered.
        status, _ = await asyncio.to_thread(post, running.http_target, "/v2/models/mnist/infer")
        assert status == 200


async def test_stop_finishes_running_http_requests_and_refuses_new_ones(
        model_templates: Any, models_root: Path) -> None:
    async with slow_server(model_templates, models_root) as running:
        await wait_serving(running, "mnist")
        target = running.http_target
        in_flight = asyncio.ensure_future(
            asyncio.to_thread(post, target, "/v2/models/mnist/infer"))

        async def running_request() -> bool:
            return running.server.in_flight == 1

        await wait_for(running_request, "the request to reach the server")
        stopping = asyncio.ensure_future(running.server.stop(grace=10))
        status, answer = await in_flight
        assert status == 200 and answer["outputs"][0]["shape"] == [1, 10]
        await stopping
        with pytest.raises(urllib.error.URLError):
            await asyncio.to_thread(post, target, "/v2/health/live", 5)


