"""The Open Inference Protocol v2 over gRPC, driven by Triton's own client (tritonclient)
against a real server on loopback: health, metadata, inference from pixels and files,
the classification extension, every error path."""

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from digits.v1 import classifier_pb2

from support.client_envs import client_python, run_client
from support.models import expected_probabilities, install
from support.polling import wait_for
from support.prometheus import sample_value
from support.servers import (
    Running,
    loopback_settings,
    running_server,
    wait_available,
    wait_serving,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def triton() -> Path:
    """The python of the environment holding tritonclient (built on first use)."""
    return client_python("triton")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(model_templates: Any, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Running]:
    """A server with mnist versions 1 (dense_a) and 2 (dense_b), both loaded."""
    models_root = tmp_path_factory.mktemp("models")
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1, 2])
        yield running


async def triton_grpc(triton: Path, served: Running, *arguments: str) -> Any:
    """tritonclient's answer, run off the event loop that serves it."""
    return await asyncio.to_thread(run_client, triton, "triton_client.py", "grpc",
                                   served.target, *arguments)


def mnist_digits(mnist_path: Path, count: int) -> np.ndarray:
    return np.load(mnist_path)["x_test"][:count]


def png(pixels: np.ndarray) -> bytes:
    """An MNIST digit as a user's file: enlarged, dark ink on white."""
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).resize((84, 84)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_health_and_readiness(served: Running, triton: Path) -> None:
    answer = await triton_grpc(triton, served, "health")
    assert answer == {"live": True, "ready": True, "model_ready": True}
    for model, version in (("mnist", "1"), ("mnist", "7"), ("fashion", "")):
        answer = await triton_grpc(triton, served, "health", "--model", model,
                                   "--version", version)
        assert answer["model_ready"] is (version == "1"), (model, version)


async def test_server_and_model_metadata(served: Running, triton: Path) -> None:
    answer = await triton_grpc(triton, served, "metadata")
    assert answer["server"]["name"] == "digits"
    assert answer["server"]["extensions"] == ["classification"]
    model = answer["model"]
    assert (model["name"], model["versions"], model["platform"]) == (
        "mnist", ["2", "1"], "tensorflow_savedmodel")
    assert model["inputs"] == [
        {"name": "pixels", "datatype": "UINT8", "shape": ["-1", "28", "28"]},
        {"name": "images", "datatype": "BYTES", "shape": ["-1"]}]
    assert model["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]}]


@pytest.mark.parametrize("version", ["", "1"])
async def test_pixels_get_the_probabilities_digits_v1_gives(
        served: Running, triton: Path, model_templates: Any, mnist_path: Path,
        tmp_path: Path, version: str) -> None:
    pixels = mnist_digits(mnist_path, 64)
    np.save(tmp_path / "pixels.npy", pixels)
    answer = await triton_grpc(triton, served, "infer", "--pixels", str(tmp_path / "pixels.npy"),
                               "--version", version)
    expected_version = int(version or 2)
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (
        "mnist", str(expected_version), "client-7")
    assert answer["shape"] == [64, 10]
    probabilities = np.array(answer["values"]).reshape(64, 10)
    reference = await served.classify(pixels, version=expected_version)
    np.testing.assert_allclose(
        probabilities, [list(p.probabilities) for p in reference.predictions], atol=1e-6)
    weights = model_templates.weights_b if expected_version == 2 else model_templates.weights_a
    np.testing.assert_allclose(probabilities, expected_probabilities(weights, pixels),
                               atol=1e-5)


async def test_image_files_and_the_classification_extension(
        served: Running, triton: Path, mnist_path: Path, tmp_path: Path) -> None:
    files = []
    for index, digit in enumerate(mnist_digits(mnist_path, 5)):
        files.append(tmp_path / f"{index}.png")
        files[-1].write_bytes(png(digit))
    answer = await triton_grpc(triton, served, "infer", "--k", "3", "--files",
                               *map(str, files))
    assert answer["shape"] == [5, 3]
    reference = await served.stub.Classify(classifier_pb2.ClassifyRequest(
        images=[classifier_pb2.Image(encoded=path.read_bytes()) for path in files], top_k=3),
        timeout=10)
    for row, prediction in enumerate(reference.predictions):
        entries = [entry.split(":") for entry in answer["values"][3 * row:3 * row + 3]]
        assert [label for _, _, label in entries] == [t.label for t in prediction.top]
        assert [int(index) for _, index, _ in entries] == [int(t.label) for t in prediction.top]
        assert [float(score) for score, _, _ in entries] == pytest.approx(
            [t.probability for t in prediction.top], abs=1e-6)


ERRORS = [
    ("unknown model", ["--model", "fashion"], "NOT_FOUND", "no model named 'fashion'"),
    ("unknown version", ["--version", "7"], "NOT_FOUND", "has no version 7 loaded"),
    ("malformed version", ["--version", "two"], "INVALID_ARGUMENT",
     "model_version: 'two' is not a version"),
    ("bad model name", ["--model", "../etc"], "INVALID_ARGUMENT", "invalid model name"),
    ("too many classes", ["--k", "11"], "INVALID_ARGUMENT",
     "outputs[0].parameters.classification: 11 is out of range"),
]


@pytest.mark.parametrize(("case", "arguments", "status", "message"), ERRORS,
                         ids=[case[0] for case in ERRORS])
async def test_errors_carry_the_digits_status_codes(
        served: Running, triton: Path, tmp_path: Path, case: str, arguments: list[str],
        status: str, message: str) -> None:
    np.save(tmp_path / "pixels.npy", np.zeros((2, 28, 28), np.uint8))
    answer = await triton_grpc(triton, served, "infer", "--pixels",
                               str(tmp_path / "pixels.npy"), *arguments)
    assert answer["error"]["status"] == f"StatusCode.{status}"
    assert message in answer["error"]["message"]


@pytest.mark.parametrize(("pixels", "message"), [
    (np.zeros((2, 28, 27), np.uint8), "inputs[0].shape: [2, 28, 27]; send [N, 28, 28]"),
    (np.zeros((2, 28, 28), np.float32), "inputs[0].datatype"),
    (np.zeros((0, 28, 28), np.uint8), "images: the batch is empty"),
], ids=["shape", "datatype", "empty"])
async def test_malformed_tensors_are_invalid_argument(
        served: Running, triton: Path, tmp_path: Path, pixels: np.ndarray,
        message: str) -> None:
    np.save(tmp_path / "pixels.npy", pixels)
    answer = await triton_grpc(triton, served, "infer", "--pixels",
                               str(tmp_path / "pixels.npy"))
    assert answer["error"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert message in answer["error"]["message"]


async def test_requests_of_both_protocols_share_one_model_call(
        model_templates: Any, models_root: Path, triton: Path, tmp_path: Path) -> None:
    """While a slow model call runs, a digits.v1 request and a tritonclient request queue
    up: the next model call takes both."""
    install(model_templates.slow, models_root, "mnist", 1)
    np.save(tmp_path / "pixels.npy", np.zeros((1, 28, 28), np.uint8))
    ready, go = tmp_path / "ready", tmp_path / "go"
    async with running_server(loopback_settings(models_root, inference_threads=1)) as running:
        await wait_serving(running, "mnist")
        oip = asyncio.ensure_future(asyncio.to_thread(
            run_client, triton, "triton_client.py", "grpc", running.target, "infer",
            "--pixels", str(tmp_path / "pixels.npy"), "--ready", str(ready), "--go", str(go)))

        async def connected() -> bool:
            return ready.exists()

        await wait_for(connected, "tritonclient to connect")
        first = asyncio.ensure_future(running.classify(np.zeros((1, 28, 28), np.uint8)))
        model = {"model": "mnist"}

        async def first_running() -> bool:
            return sample_value(running.scrape(), "digits_queue_wait_seconds_count",
                                model) == 1

        await wait_for(first_running, "the first request to reach the model")
        go.touch()  # both now queue behind the first call (a slow model: 0.5 s)
        second = await running.classify(np.zeros((1, 28, 28), np.uint8))
        answers = await asyncio.gather(first, oip)
        assert len(second.predictions) == len(answers[0].predictions) == 1
        assert answers[1]["shape"] == [1, 10]
        text = running.scrape()
    # Two model calls for three images: the first alone, then one of each protocol.
    assert sample_value(text, "digits_batch_size_images_count", model) == 2
    assert sample_value(text, "digits_batch_size_images_sum", model) == 3
    assert sample_value(text, "digits_batch_size_images_bucket", model | {"le": "1.0"}) == 1


def grpcurl(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The real grpcurl (a static build from PyPI) beside the project's python."""
    program = Path(sys.executable).parent / "grpcurl"
    return subprocess.run([str(program), "-plaintext", *arguments], capture_output=True,
                          text=True, timeout=30)


async def test_grpcurl_lists_every_service_and_calls_server_ready(served: Running) -> None:
    assert await served.status("inference.GRPCInferenceService") == "SERVING"
    listed = await asyncio.to_thread(grpcurl, served.target, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [
        "digits.v1.Classifier", "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection", "inference.GRPCInferenceService",
        "tensorflow.serving.ModelService", "tensorflow.serving.PredictionService"]
    ready = await asyncio.to_thread(
        grpcurl, served.target, "inference.GRPCInferenceService/ServerReady")
    assert ready.returncode == 0, ready.stderr
    assert json.loads(ready.stdout) == {"ready": True}
    metadata = await asyncio.to_thread(
        grpcurl, "-d", '{"name": "mnist", "version": "1"}', served.target,
        "inference.GRPCInferenceService/ModelMetadata")
    assert json.loads(metadata.stdout)["versions"] == ["2", "1"]
