"""digits.v1 over HTTP in the proto's JSON mapping, driven by curl against a real server."""

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from support.http import curl_json
from support.models import expected_probabilities, install
from support.prometheus import sample_value
from support.servers import Running, loopback_settings, running_server, wait_available

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Running]:
    models_root = tmp_path_factory.mktemp("models")
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1, 2])
        yield running


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_packed_pixels_in_json_match_the_model(
        served: Running, curl: str, model_templates: Any) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    status, answer = await curl_json(curl, served, "/digits/v1/models/mnist:classify",
                                     {"packed_pixels": b64(pixels.tobytes()), "version": 1,
                                      "top_k": 2})
    assert status == 200, answer
    assert (answer["model"], answer["version"]) == ("mnist", "1")  # int64: a JSON string
    probabilities = np.array([p["probabilities"] for p in answer["predictions"]])
    np.testing.assert_allclose(probabilities,
                               expected_probabilities(model_templates.weights_a, pixels),
                               atol=1e-5)
    first = answer["predictions"][0]
    assert first["label"] == first["top"][0]["label"] and len(first["top"]) == 2
    # Proto field names, not lowerCamelCase (proto3 JSON leaves a zero class_index out).
    assert {"label", "confidence", "probabilities", "top"} <= set(first)
    assert set(first) <= {"label", "class_index", "confidence", "probabilities", "top"}


async def test_a_png_file_as_base64_with_the_default_model(
        served: Running, curl: str, mnist_path: Path) -> None:
    digit = np.load(mnist_path)["x_test"][0]
    buffer = io.BytesIO()
    Image.fromarray(255 - digit).resize((84, 84)).save(buffer, "PNG")
    status, answer = await curl_json(curl, served, "/digits/v1/classify",
                                     {"images": [{"encoded": b64(buffer.getvalue())}]})
    assert status == 200, answer
    assert (answer["model"], answer["version"], len(answer["predictions"])) == (
        "mnist", "2", 1)


async def test_list_and_get_models(served: Running, curl: str) -> None:
    status, listing = await curl_json(curl, served, "/digits/v1/models")
    assert status == 200 and [m["name"] for m in listing["models"]] == ["mnist"]
    status, model = await curl_json(curl, served, "/digits/v1/models/mnist")
    assert (status, model["default_version"]) == (200, "2")
    assert [v["state"] for v in model["versions"]] == ["AVAILABLE", "AVAILABLE"]
    assert model["input"]["shape"] == ["-1", "28", "28"]


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/digits/v1/models/fashion:classify", {"packed_pixels": b64(bytes(784))}, 404,
     "no model named 'fashion'"),
    ("/digits/v1/models/mnist:classify", {"model": "other", "packed_pixels": b64(bytes(784))},
     400, "model: the body names 'other', the path 'mnist'"),
    ("/digits/v1/classify", {"packed_pixels": "not base64!"}, 400,
     "body: not a digits.v1 ClassifyRequest in JSON"),
    ("/digits/v1/classify", {"pixels": "x"}, 400, "body: not a digits.v1 ClassifyRequest"),
    ("/digits/v1/classify", {}, 400, "images: the batch is empty"),
    ("/digits/v1/classify", {"packed_pixels": b64(bytes(100))}, 400,
     "packed_pixels: has 100 bytes"),
], ids=["unknown model", "two names", "bad base64", "unknown field", "empty", "short pixels"])
async def test_errors(served: Running, curl: str, path: str, body: Any, status: int,
                      message: str) -> None:
    got, answer = await curl_json(curl, served, path, body)
    assert got == status, answer
    assert message in answer["error"]
    status_, _ = await curl_json(curl, served, "/digits/v1/models/nothing-here")
    assert status_ == 404


async def test_requests_are_counted_as_digits_v1_over_http(served: Running) -> None:
    text = served.scrape()
    labels = {"protocol": "digits.v1/http", "method": "Classify"}
    assert (sample_value(text, "digits_requests_total", labels | {"code": "OK"}) or 0) >= 2
    assert (sample_value(text, "digits_requests_total",
                         labels | {"code": "INVALID_ARGUMENT"}) or 0) >= 1
