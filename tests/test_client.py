"""The Python client and the ``digits classify`` / ``digits health`` commands."""

import asyncio
import io
import json
import socket
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from digits.service.client import ClassifierClient

from support.cli import digits_cli
from support.models import SLOW_MODEL_SECONDS, expected_probabilities, install
from support.polling import wait_for
from support.prometheus import sample_value
from support.servers import loopback_settings, running_server, wait_serving


async def test_client_classifies_pixels_and_files_and_describes_models(
        model_templates: Any, models_root: Path, mnist_path: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running)
        pixels = np.load(mnist_path)["x_test"][:1000]
        png = io.BytesIO()
        Image.fromarray(255 - pixels[0]).resize((140, 140)).save(png, "PNG")

        def use_client() -> tuple[Any, Any, Any, str]:
            with ClassifierClient(running.target, timeout=20) as client:
                return (client.classify_pixels(pixels, top_k=2),
                        client.classify_encoded([png.getvalue()]),
                        client.get_model("mnist"), client.health("mnist"))

        batch, encoded, model, health = await asyncio.to_thread(use_client)
    probabilities = np.array([list(p.probabilities) for p in batch.predictions])
    np.testing.assert_allclose(
        probabilities, expected_probabilities(model_templates.weights_a, pixels), atol=1e-5)
    assert all(len(p.top) == 2 for p in batch.predictions)
    assert len(encoded.predictions) == 1 and model.default_version == 1
    assert health == "SERVING"


async def test_client_retries_unavailable_until_a_model_loads(
        model_templates: Any, models_root: Path) -> None:
    async with running_server(loopback_settings(models_root)) as running:
        def classify() -> Any:
            with ClassifierClient(running.target, timeout=20) as client:
                return client.classify_pixels(np.zeros((1, 28, 28), np.uint8))

        call = asyncio.ensure_future(asyncio.to_thread(classify))

        async def refused() -> bool:
            value = sample_value(running.scrape(), "digits_requests_total",
                                 {"protocol": "digits.v1/grpc", "method": "Classify",
                                  "code": "UNAVAILABLE"})
            return value is not None and value >= 1

        await wait_for(refused, "the client's first attempt to be refused")
        install(model_templates.dense_a, models_root, "mnist", 1)
        response = await call
        assert response.version == 1


async def test_client_gives_up_at_its_deadline_and_does_not_retry_bad_input(
        model_templates: Any, models_root: Path) -> None:
    install(model_templates.slow, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running)

        def call(timeout: float, **fields: Any) -> grpc.StatusCode:
            with ClassifierClient(running.target, timeout=timeout) as client:
                try:
                    client.classify_pixels(np.zeros((1, 28, 28), np.uint8), **fields)
                except grpc.RpcError as error:
                    return error.code()
            return grpc.StatusCode.OK

        assert await asyncio.to_thread(call, SLOW_MODEL_SECONDS / 5) == \
            grpc.StatusCode.DEADLINE_EXCEEDED
        assert await asyncio.to_thread(call, 10.0, top_k=50) == grpc.StatusCode.INVALID_ARGUMENT
        assert sample_value(running.scrape(), "digits_requests_total",
                            {"protocol": "digits.v1/grpc", "method": "Classify",
                             "code": "INVALID_ARGUMENT"}) == 1


async def test_classify_command_prints_text_and_json(
        model_templates: Any, models_root: Path, tmp_path: Path, mnist_path: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    digits = np.load(mnist_path)["x_test"][:3]
    np.save(tmp_path / "three.npy", digits)
    np.save(tmp_path / "flat.npy", digits.reshape(3, 784).astype(np.int64))
    Image.fromarray(255 - digits[0]).resize((90, 90)).save(tmp_path / "seven.png")
    files = [str(tmp_path / name) for name in ("seven.png", "three.npy", "flat.npy")]
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running)
        text = await asyncio.to_thread(digits_cli, "classify", "--server", running.target,
                                       "--top-k", "2", *files)
        as_json = await asyncio.to_thread(digits_cli, "classify", "--server", running.target,
                                          "--json", "--batch-size", "2", *files)
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert len(lines) == 7
    assert lines[0].startswith(f"{files[0]}: ") and "confidence" in lines[0] and "top:" in lines[0]
    assert lines[1].startswith(f"{files[1]}[0]: ")
    assert as_json.exit_code == 0, as_json.output
    predictions = json.loads(as_json.output)["predictions"]
    assert [p["source"] for p in predictions][1:4] == [f"{files[1]}[{i}]" for i in range(3)]
    expected = expected_probabilities(model_templates.weights_a, digits)
    for prediction, row in zip(predictions[1:4], expected, strict=True):
        assert prediction["label"] == str(int(row.argmax()))
        assert (prediction["model"], prediction["version"]) == ("mnist", 1)
    # The int64 [N, 784] file gives the same answers as the uint8 [N, 28, 28] one.
    assert [p["label"] for p in predictions[4:]] == [p["label"] for p in predictions[1:4]]


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((2, 28, 28), np.float32), "float32 values; save uint8 pixels"),
    (np.full((28, 28), 300, np.int32), "int32 values; save uint8"),
    (np.zeros((5, 10), np.uint8), "shape (5, 10); expected"),
])
def test_classify_command_explains_unusable_arrays(
        tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    # Refused before any connection is needed: nothing listens on this address.
    result = digits_cli("classify", "--server", "127.0.0.1:1", str(tmp_path / "bad.npy"))
    assert result.exit_code == 1
    assert message in result.output


async def test_health_command_exit_codes(model_templates: Any, models_root: Path) -> None:
    async with running_server(loopback_settings(models_root)) as running:
        not_serving = await asyncio.to_thread(digits_cli, "health", "--server", running.target)
        install(model_templates.dense_a, models_root, "mnist", 1)
        await wait_serving(running)
        serving = await asyncio.to_thread(digits_cli, "health", "--server", running.target)
        model = await asyncio.to_thread(digits_cli, "health", "--server", running.target,
                                        "--service", "mnist")
        unknown = await asyncio.to_thread(digits_cli, "health", "--server", running.target,
                                          "--service", "fashion")
    assert (not_serving.exit_code, not_serving.output.strip()) == (1, "NOT_SERVING")
    assert (serving.exit_code, serving.output.strip()) == (0, "SERVING")
    assert model.exit_code == 0
    assert unknown.exit_code == 1 and "SERVICE_UNKNOWN" in unknown.output
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = await asyncio.to_thread(digits_cli, "health", "--server",
                                          f"127.0.0.1:{closed_port}", "--timeout", "0.5")
    assert unreachable.exit_code == 2
