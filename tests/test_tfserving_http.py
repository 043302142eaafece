"""TensorFlow Serving's REST API driven by curl: status, metadata, predict in the row
and columnar forms, files as b64, and its errors."""

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


async def test_status_and_metadata(served: Running, curl: str) -> None:
    status, answer = await curl_json(curl, served, "/v1/models/mnist")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}},
        {"version": "1", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]}
    status, answer = await curl_json(curl, served, "/v1/models/mnist/versions/1")
    assert [v["version"] for v in answer["model_version_status"]] == ["1"]
    status, answer = await curl_json(curl, served, "/v1/models/mnist/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "mnist", "signature_name": "serving_default",
                                    "version": "2"}
    signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["pixels"]["dtype"] == "DT_UINT8"
    assert signature["outputs"]["probabilities"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""}, {"size": "10", "name": ""}]


async def test_predict_rows_and_columns(served: Running, curl: str,
                                        model_templates: Any) -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    expected = expected_probabilities(model_templates.weights_a, pixels)
    for body, key in (({"instances": pixels.tolist()}, "predictions"),
                      ({"instances": [{"pixels": p.tolist()} for p in pixels]}, "predictions"),
                      ({"inputs": {"pixels": pixels.tolist()}}, "outputs"),
                      ({"signature_name": "serving_default", "inputs": pixels.tolist()},
                       "outputs")):
        status, answer = await curl_json(curl, served, "/v1/models/mnist/versions/1:predict",
                                         body)
        assert status == 200, answer
        np.testing.assert_allclose(np.array(answer[key]), expected, atol=1e-5)


async def test_predict_files_as_b64(served: Running, curl: str, mnist_path: Path) -> None:
    digit = np.load(mnist_path)["x_test"][1]
    buffer = io.BytesIO()
    Image.fromarray(255 - digit).resize((56, 56)).save(buffer, "PNG")
    file = {"b64": base64.b64encode(buffer.getvalue()).decode()}
    status, rows = await curl_json(curl, served, "/v1/models/mnist:predict",
                                   {"instances": [file, file]})
    assert status == 200, rows
    status, columns = await curl_json(curl, served, "/v1/models/mnist:predict",
                                      {"inputs": {"images": [file]}})
    assert status == 200, columns
    assert np.array(rows["predictions"]).shape == (2, 10)
    np.testing.assert_allclose(rows["predictions"][0], columns["outputs"][0], atol=1e-6)


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/v1/models/fashion:predict", {"instances": [[[0] * 28] * 28]}, 404, "no model named"),
    ("/v1/models/mnist/versions/9:predict", {"instances": [[[0] * 28] * 28]}, 404,
     "no version 9 loaded"),
    ("/v1/models/mnist:predict", {"instances": [[0] * 784]}, 400,
     "instances.shape: [1, 784]"),
    ("/v1/models/mnist:predict", {"instances": [], "inputs": []}, 400, "one of the two"),
    ("/v1/models/mnist:predict", {"instances": [{"b64": "??"}]}, 400, "b64: not base64"),
    ("/v1/models/mnist:predict", {"signature_name": "x", "instances": []}, 400,
     "signature_name: 'x'"),
    ("/v1/models/mnist:predict", {"instances": [[[0.5] * 28] * 28]}, 400, "not integers"),
], ids=["unknown model", "unknown version", "shape", "both forms", "bad b64", "signature",
        "floats"])
async def test_predict_errors(served: Running, curl: str, path: str, body: Any, status: int,
                              message: str) -> None:
    got, answer = await curl_json(curl, served, path, body)
    assert got == status, answer
    assert message in answer["error"]
