"""Version labels on a real server: ``digits promote`` moves unpinned traffic to the
``stable`` version under steady load with no failed request, ``--rollback`` moves it
back, requests may name a label, and a labelled version stays loaded beyond
--max-versions."""

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from digits.cli import main
from digits.v1 import classifier_pb2

from support.client_envs import client_python, run_client
from support.load import Load, answered_by
from support.models import install
from support.polling import wait_for
from support.prometheus import sample_value
from support.servers import (
    Running,
    loopback_settings,
    model_status,
    running_server,
    wait_available,
)


def promote(models_root: Path, *arguments: str) -> None:
    result = CliRunner().invoke(main, ["promote", "--models", str(models_root), *arguments])
    assert result.exit_code == 0, result.output


async def default_version(running: Running) -> int:
    status = await model_status(running)
    return int(status.default_version) if status else 0


async def test_promote_and_rollback_move_traffic_with_no_failed_request(
        models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    pixels = np.zeros((4, 28, 28), np.uint8)
    async with running_server(loopback_settings(models_root, max_versions=1)) as running:
        await wait_available(running, "mnist", [2])  # one version kept: the newest
        promote(models_root, "mnist", "1")
        # The labelled version loads beside the newest, and takes the unpinned traffic.
        await wait_for(lambda: _is(default_version(running), 1), "stable version 1")
        await wait_available(running, "mnist", [1, 2])

        load = Load(running, {1: model_templates.weights_a, 2: model_templates.weights_b})
        await load.until(20)
        promote(models_root, "mnist", "2")
        await wait_for(lambda: answered_by(load, 2), "unpinned requests answered by 2")
        promote(models_root, "mnist", "--rollback")
        await wait_for(lambda: answered_by(load, 1), "unpinned requests answered by 1")
        await load.until(20)
        await load.stop()
        assert not load.failures, load.failures[:3]
        assert all(seen == {1, 2} for seen in load.versions_seen)

        labelled = await running.classify(pixels, version_label="stable")
        assert labelled.version == 1
        status = await running.stub.GetModel(classifier_pb2.GetModelRequest(name="mnist"))
        assert dict(status.version_labels) == {"stable": 1} and status.default_version == 1
        page = running.scrape()
        assert 'digits_model_default_version{model="mnist"} 1.0' in page


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def test_every_protocol_can_name_a_label(models_root: Path, model_templates: Any,
                                               tmp_path: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    promote(models_root, "mnist", "1")
    promote(models_root, "mnist", "2", "--label", "canary")
    pixels = np.zeros((2, 28, 28), np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    triton = client_python("triton")
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1, 2])
        await wait_for(lambda: _is(default_version(running), 1), "stable version 1")
        http = f"http://{running.http_target}"
        for label, version in (("stable", 1), ("canary", 2)):
            answers = {
                "digits.v1 gRPC": (await running.classify(pixels, version_label=label)
                                   ).version,
                "digits.v1 HTTP": (await _post(f"{http}/digits/v1/models/mnist:classify", {
                    "packed_pixels": base64.b64encode(pixels.tobytes()).decode(),
                    "version_label": label}))["version"],
                "TF Serving gRPC": (await _tf_serving_predict(running, label)
                                    ).model_spec.version.value,
                # Its predict answers carry no version; its status route says where a
                # label points.
                "TF Serving REST": (await _get(f"{http}/v1/models/mnist/labels/{label}")
                                    )["model_version_status"][0]["version"],
            }
            predicted = await _post(f"{http}/v1/models/mnist/labels/{label}:predict",
                                    {"instances": pixels.tolist()})
            assert len(predicted["predictions"]) == 2
            for protocol, target in (("OIP gRPC", running.target),
                                     ("OIP HTTP", running.http_target)):
                answer = await asyncio.to_thread(
                    run_client, triton, "triton_client.py", protocol.split()[1].lower(),
                    target, "infer", "--pixels", str(tmp_path / "pixels.npy"),
                    "--label", label)
                answers[protocol] = int(answer["model_version"])
            assert {protocol: int(v) for protocol, v in answers.items()} == dict.fromkeys(
                answers, version), label
        # An unknown label is NOT_FOUND everywhere, naming the labels there are.
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await running.classify(pixels, version_label="beta")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert "its labels: canary, stable" in str(raised.value.details())
        answer = await asyncio.to_thread(
            run_client, triton, "triton_client.py", "grpc", running.target, "infer",
            "--pixels", str(tmp_path / "pixels.npy"), "--label", "beta")
        assert answer["error"]["status"] == "StatusCode.NOT_FOUND"


async def _tf_serving_predict(running: Running, label: str) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.version_label = "mnist", label
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 28, 28), np.uint8)))
    return await prediction_service_pb2_grpc.PredictionServiceStub(running.channel).Predict(
        request, timeout=10)


async def _post(url: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def _get(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def test_a_canary_at_a_fifth_gets_a_fifth_of_the_unpinned_requests(
        models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    promote(models_root, "mnist", "1")
    promote(models_root, "mnist", "2", "--label", "canary", "--weight", "0.2")
    async with running_server(loopback_settings(models_root)) as running:
        async def split() -> bool:
            status = await model_status(running)
            return status is not None and (dict(status.version_labels) == {"stable": 1, "canary": 2}
                    and status.canary_weight == pytest.approx(0.2))

        await wait_for(split, "stable 1 and a canary 2 at 0.2")
        page = running.scrape()
        for label, version in (("stable", "1"), ("canary", "2")):
            assert sample_value(page, "digits_model_version_label_info",
                                {"model": "mnist", "label": label, "version": version}) == 1
        versions = await _versions(running, [f"id-{index}" for index in range(2000)])
        to_canary = versions.count(2)
        assert 0.15 * 2000 <= to_canary <= 0.25 * 2000, to_canary
        again = await _versions(running, [f"id-{index}" for index in range(200)])
        assert again == versions[:200]  # the same id, the same version
        promote(models_root, "mnist", "--label", "canary", "--weight", "0")
        await wait_for(lambda: _no_canary(running), "canary weight 0")
        assert set(await _versions(running, [""] * 200)) == {1}


async def _versions(running: Running, request_ids: list[str]) -> list[int]:
    """The version answering each unpinned request, 50 in flight at a time."""
    pixels = np.zeros((1, 28, 28), np.uint8)
    versions = []
    for start in range(0, len(request_ids), 50):
        replies = await asyncio.gather(*(running.classify(pixels, request_id=request_id)
                                         for request_id in request_ids[start:start + 50]))
        versions += [int(reply.version) for reply in replies]
    return versions


async def _no_canary(running: Running) -> bool:
    status = await model_status(running)
    return status is not None and status.canary_weight == 0


async def test_a_canary_less_sure_than_stable_is_halted_by_the_server(
        models_root: Path) -> None:
    from digits.jobs.export import DenseStackServingModule, export_model
    from digits.v1.model_card_pb2 import ModelCard

    def export(bias: np.ndarray) -> None:
        """A dense version answering softmax(bias) whatever the image."""
        weights = (np.zeros((784, 10), np.float32), bias.astype(np.float32))
        export_model(DenseStackServingModule([weights], "softmax"), models_root, "mnist",
                     ModelCard(labels=[str(digit) for digit in range(10)],
                               experiment="test"))

    export(np.eye(10)[7] * 20)  # stable: a sure 7
    export(np.zeros(10))  # canary: 0.1 for every digit
    promote(models_root, "mnist", "1")
    promote(models_root, "mnist", "2", "--label", "canary", "--weight", "0.5")
    settings = loopback_settings(models_root, canary_min_images=50, canary_window=60)
    async with running_server(settings) as running:
        await wait_for(lambda: _split_at(running, 0.5), "a canary at 0.5")
        first = await _versions(running, [f"id-{index}" for index in range(300)])
        assert first.count(2) >= 50  # it took its share until judged (50 images each)
        status = await running.stub.GetModel(classifier_pb2.GetModelRequest(name="mnist"))
        assert status.canary_halted.startswith("canary version 2 halted: low-confidence "
                                               "share 1.000 against stable's 0.000")
        assert set(await _versions(running, [f"id-{index}" for index in range(200)])) == {1}
        named = await running.classify(np.zeros((1, 28, 28), np.uint8),
                                       version_label="canary")
        assert named.version == 2
        assert sample_value(running.scrape(), "digits_canary_halts_total",
                            {"model": "mnist"}) == 1


async def _split_at(running: Running, weight: float) -> bool:
    status = await model_status(running)
    return status is not None and status.canary_weight == pytest.approx(weight) and (
        "canary" in status.version_labels)
