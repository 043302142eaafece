"""The Open Inference Protocol v2 over HTTP, driven by tritonclient.http (binary tensors,
its default, and JSON) and by curl against a real server on loopback."""

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from digits.service.http_api.openapi import document
from digits.v1 import classifier_pb2

from support.client_envs import client_python, run_client
from support.http import curl_json, run_curl
from support.models import install
from support.prometheus import sample_value
from support.servers import Running, loopback_settings, running_server, wait_available

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def triton() -> Path:
    return client_python("triton")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Running]:
    """A server with mnist versions 1 (dense_a) and 2 (dense_b), both loaded."""
    models_root = tmp_path_factory.mktemp("models")
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    settings = loopback_settings(models_root, max_message_bytes=200_000,
                                 max_images_per_request=200)
    async with running_server(settings) as running:
        await wait_available(running, "mnist", [1, 2])
        yield running


async def triton_http(triton: Path, served: Running, *arguments: str) -> Any:
    return await asyncio.to_thread(run_client, triton, "triton_client.py", "http",
                                   served.http_target, *arguments)


async def digits_v1(served: Running, pixels: np.ndarray, version: int = 0) -> np.ndarray:
    reply = await served.classify(pixels, version=version)
    return np.array([list(p.probabilities) for p in reply.predictions])


async def test_health_metadata_and_readiness_status_codes(
        served: Running, triton: Path, curl: str) -> None:
    assert await triton_http(triton, served, "health") == {
        "live": True, "ready": True, "model_ready": True}
    assert await curl_json(curl, served, "/v2/health/live") == (200, {"live": True})
    assert await curl_json(curl, served, "/v2/health/ready") == (200, {"ready": True})
    assert await curl_json(curl, served, "/v2/models/mnist/versions/1/ready") == (
        200, {"name": "mnist", "ready": True})
    for path in ("/v2/models/mnist/versions/7/ready", "/v2/models/fashion/ready"):
        status, body = await curl_json(curl, served, path)
        assert (status, body["ready"]) == (503, False), path
    metadata = await triton_http(triton, served, "metadata")
    assert metadata["server"]["extensions"] == ["classification", "binary_tensor_data"]
    assert metadata["model"] == {
        "name": "mnist", "versions": ["2", "1"], "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 28, 28]},
                   {"name": "images", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]}


@pytest.mark.parametrize("form", ["binary", "json"])
async def test_tritonclient_gets_the_probabilities_digits_v1_gives(
        served: Running, triton: Path, mnist_path: Path, tmp_path: Path, form: str) -> None:
    pixels = np.load(mnist_path)["x_test"][:50]
    np.save(tmp_path / "pixels.npy", pixels)
    extra = ["--json"] if form == "json" else []
    answer = await triton_http(triton, served, "infer", "--pixels",
                               str(tmp_path / "pixels.npy"), "--version", "1", *extra)
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (
        "mnist", "1", "client-7")
    np.testing.assert_allclose(np.array(answer["values"]).reshape(50, 10),
                               await digits_v1(served, pixels, version=1), atol=1e-6)


async def test_files_in_binary_and_classes_as_strings(
        served: Running, triton: Path, mnist_path: Path, tmp_path: Path) -> None:
    files = []
    for index, digit in enumerate(np.load(mnist_path)["x_test"][:4]):
        buffer = io.BytesIO()
        Image.fromarray(255 - digit).resize((56, 56)).save(buffer, "PNG")
        files.append(tmp_path / f"{index}.png")
        files[-1].write_bytes(buffer.getvalue())
    answer = await triton_http(triton, served, "infer", "--k", "2", "--files",
                               *map(str, files))
    assert answer["shape"] == [4, 2]
    reference = await served.stub.Classify(classifier_pb2.ClassifyRequest(
        images=[classifier_pb2.Image(encoded=path.read_bytes()) for path in files], top_k=2),
        timeout=10)
    assert [entry.split(":")[2] for entry in answer["values"]] == [
        top.label for prediction in reference.predictions for top in prediction.top]


async def test_curl_sends_json_tensors_nested_and_base64_files(
        served: Running, curl: str, mnist_path: Path) -> None:
    pixels = np.load(mnist_path)["x_test"][:3]
    status, body = await curl_json(curl, served, "/v2/models/mnist/infer", {
        "id": "curl-1", "inputs": [{"name": "pixels", "datatype": "UINT8",
                                    "shape": [3, 28, 28], "data": pixels.tolist()}]})
    assert status == 200, body
    assert (body["model_version"], body["id"]) == ("2", "curl-1")
    output = body["outputs"][0]
    assert (output["name"], output["datatype"], output["shape"]) == (
        "probabilities", "FP32", [3, 10])
    np.testing.assert_allclose(np.array(output["data"]).reshape(3, 10),
                               await digits_v1(served, pixels), atol=1e-6)


ONE_IMAGE = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28],
                        "data": [0] * 784}]}
ERRORS = [
    ("unknown model", "/v2/models/fashion/infer", ONE_IMAGE, 404, "no model named 'fashion'"),
    ("unknown version", "/v2/models/mnist/versions/9/infer", ONE_IMAGE, 404,
     "has no version 9 loaded"),
    ("malformed version", "/v2/models/mnist/versions/x/infer", ONE_IMAGE, 400,
     "version: 'x' is not a version"),
    ("bad shape", "/v2/models/mnist/infer",
     {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 784],
                  "data": [0] * 784}]}, 400, "inputs[0].shape: [1, 784]"),
    ("not JSON", "/v2/models/mnist/infer", "not json", 400, "not a JSON inference request"),
    ("no inputs", "/v2/models/mnist/infer", {"outputs": []}, 400, "inputs: send a list"),
    ("pixel out of range", "/v2/models/mnist/infer",
     {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28],
                  "data": [300] * 784}]}, 400, "values outside 0..255"),
    ("too many classes", "/v2/models/mnist/infer",
     {**ONE_IMAGE, "outputs": [{"name": "probabilities",
                                "parameters": {"classification": 11}}]}, 400,
     "outputs[0].parameters.classification: 11 is out of range"),
    ("bad timeout", "/v2/models/mnist/infer?timeout=soon", ONE_IMAGE, 400,
     "timeout: 'soon' is not a number of seconds"),
    # (aiohttp itself refuses request lines over 8 KB.)
    ("a 5,000-character model name", "/v2/models/" + "y" * 5000 + "/infer", ONE_IMAGE, 400,
     "invalid model name '" + "y" * 64 + "'... (5,000 characters)"),
    ("over the size limit", "/v2/models/mnist/infer",
     {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [201, 28, 28],
                  "data": [0] * 201 * 784}]}, 413, "Request Entity Too Large"),
]


@pytest.mark.parametrize(("case", "path", "body", "status", "message"), ERRORS,
                         ids=[case[0] for case in ERRORS])
async def test_errors_answer_json_with_a_fitting_status(
        served: Running, curl: str, case: str, path: str, body: Any, status: int,
        message: str) -> None:
    if isinstance(body, str):  # not JSON at all
        answer = await asyncio.to_thread(run_curl, curl, "--data-binary", body,
                                         f"http://{served.http_target}{path}")
    else:
        answer = await curl_json(curl, served, path, body)
    assert answer[0] == status, answer
    assert message in answer[1]["error"]
    assert len(answer[1]["error"]) < 400  # what a client sent is quoted, not repeated
    # The server is unharmed.
    assert (await curl_json(curl, served, "/v2/models/mnist/infer", ONE_IMAGE))[0] == 200


async def test_a_timeout_that_passes_answers_504_and_is_counted(
        served: Running, curl: str) -> None:
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28],
                        "data": [0] * 784}]}
    status, answer = await curl_json(curl, served, "/v2/models/mnist/infer?timeout=0.000001",
                                     body)
    assert status == 504 and "deadline passed" in answer["error"]
    labels = {"protocol": "oip.v2/http", "method": "infer"}
    text = served.scrape()
    assert sample_value(text, "digits_requests_total",
                        labels | {"code": "DEADLINE_EXCEEDED"}) == 1
    assert (sample_value(text, "digits_requests_total",
                         labels | {"code": "INVALID_ARGUMENT"}) or 0) >= 1
    assert (sample_value(text, "digits_requests_total", labels | {"code": "OK"}) or 0) >= 1


async def test_not_ready_answers_503_until_a_model_loads(models_root: Path, curl: str,
                                                         model_templates: Any) -> None:
    async with running_server(loopback_settings(models_root)) as running:
        assert await curl_json(curl, running, "/v2/health/ready") == (503, {"ready": False})
        assert (await curl_json(curl, running, "/v2/health/live"))[0] == 200
        install(model_templates.dense_a, models_root, "mnist", 1)
        await wait_available(running, "mnist", [1])
        assert await curl_json(curl, running, "/v2/health/ready") == (200, {"ready": True})


async def test_the_openapi_document_is_served_and_covers_every_route(
        served: Running, curl: str) -> None:
    status, served_document = await curl_json(curl, served, "/openapi.json")
    assert status == 200 and served_document == document()
    routes = {resource.canonical for resource in served.server.http.app.router.resources()}
    page = {"/", "/ui", "/ui/", "/ui/{path}"}  # the web page's files, not API routes
    assert routes - {"/openapi.json"} - page == set(document()["paths"])
