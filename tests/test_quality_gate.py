"""The quality gate on a real server with real exported versions: a good version passes
and takes traffic; a sabotaged one (its weights zeroed, its card claiming the good one's
accuracy) is rejected, and under steady load no unpinned request reaches it, while a
pinned one does."""

from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from digits.modelstore import golden
from digits.v1 import classifier_pb2
from digits.v1.model_card_pb2 import ModelCard

from support.load import Load
from support.models import LABELS
from support.polling import wait_for
from support.prometheus import sample_value
from support.servers import loopback_settings, model_status, running_server, wait_available

GOLDEN = 500
Weights = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def mnist(mnist_path: Path) -> dict[str, np.ndarray]:
    with np.load(mnist_path) as arrays:
        return {name: arrays[name] for name in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def trained(mnist: dict[str, np.ndarray]) -> tuple[Weights, float]:
    """Softmax regression fitted on 6,000 training images (about a second), and its
    accuracy on 2,000 test images outside the golden set: what its card will claim."""
    x = mnist["x_train"][:6000].reshape(6000, -1) / 255.0
    onehot = np.eye(10)[mnist["y_train"][:6000]]
    weights, bias = np.zeros((784, 10)), np.zeros(10)
    for _ in range(100):
        logits = x @ weights + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        weights -= 0.5 * x.T @ (p - onehot) / len(x)
        bias -= 0.5 * (p - onehot).mean(axis=0)
    held_out = mnist["x_test"][GOLDEN:GOLDEN + 2000].reshape(2000, -1) / 255.0
    accuracy = float(np.mean((held_out @ weights + bias).argmax(axis=1)
                             == mnist["y_test"][GOLDEN:GOLDEN + 2000]))
    assert accuracy > 0.8  # a real model, or the test proves nothing
    return (weights.astype(np.float32), bias.astype(np.float32)), accuracy


def export(root: Path, weights: Weights, claimed: float, mnist: dict[str, np.ndarray]) -> Path:
    """The next version of mnist, exported as the jobs export, with its golden set."""
    from digits.jobs.export import DenseStackServingModule, export_model

    card = ModelCard(labels=LABELS, experiment="test")
    card.test_metrics["accuracy"] = claimed
    contents = golden.encode(mnist["x_test"][:GOLDEN], mnist["y_test"][:GOLDEN])
    return export_model(DenseStackServingModule([weights], "softmax"), root, "mnist", card,
                        extra_files={golden.GOLDEN_FILENAME: contents})


async def test_a_sabotaged_version_is_rejected_and_never_reached_unpinned(
        models_root: Path, mnist: dict[str, np.ndarray],
        trained: tuple[Weights, float]) -> None:
    weights, accuracy = trained
    export(models_root, weights, accuracy, mnist)
    images = mnist["x_test"][GOLDEN:GOLDEN + 64]
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1])
        load = Load(running, {1: weights, 3: weights})  # softmax(x @ W + b), checked
        zeroed = (np.zeros_like(weights[0]), np.zeros_like(weights[1]))
        export(models_root, zeroed, accuracy, mnist)  # claims the good one's accuracy

        async def rejected() -> bool:
            status = await model_status(running)
            rejected_state = classifier_pb2.ModelVersionStatus.REJECTED
            return status is not None and any(
                v.version == 2 and v.state == rejected_state for v in status.versions)

        await wait_for(rejected, "version 2 REJECTED")
        await load.until(50)
        await load.stop()

        assert not load.failures, load.failures[:3]
        assert all(seen == {1} for seen in load.versions_seen), (
            "an unpinned request reached the rejected version")
        pinned = await running.classify(images, version=2)
        assert pinned.version == 2  # reachable by pinning it, for debugging

        status = await running.stub.GetModel(classifier_pb2.GetModelRequest(name="mnist"))
        versions = {v.version: v for v in status.versions}
        assert status.default_version == 1
        bad, good = versions[2], versions[1]
        assert not bad.gate.passed and bad.gate.examples == GOLDEN
        assert bad.gate.accuracy < 0.2 and bad.gate.default_accuracy > 0.8
        assert "below the minimum" in bad.error and "card claims" in bad.error
        assert good.gate.passed and good.gate.accuracy > accuracy - 0.05
        assert good.gate.golden_source.endswith("mnist/1/golden.npz")
        # TensorFlow Serving's clients see it loaded, with the reason as its status.
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name, request.model_spec.version.value = "mnist", 2
        answer = await model_service_pb2_grpc.ModelServiceStub(running.channel).GetModelStatus(
            request, timeout=10)
        tf_status = answer.model_version_status[0]
        assert tf_status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        assert tf_status.status.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "rejected by the quality gate" in tf_status.status.error_message
        page = running.scrape()
        for result, count in (("passed", 1), ("rejected", 1)):
            assert sample_value(page, "digits_model_gate_results_total",
                                {"model": "mnist", "result": result}) == count

        # A good version published after it passes and takes the unpinned traffic.
        export(models_root, weights, accuracy, mnist)
        await wait_available(running, "mnist", [1, 3])
        assert (await running.classify(images)).version == 3


async def test_an_unusable_golden_set_rejects_the_version_naming_the_file(
        models_root: Path, mnist: dict[str, np.ndarray],
        trained: tuple[Weights, float]) -> None:
    weights, accuracy = trained
    (models_root / "mnist").mkdir(parents=True)
    (models_root / "mnist" / golden.GOLDEN_FILENAME).write_bytes(b"not an npz file")
    export(models_root, weights, accuracy, mnist)
    async with running_server(loopback_settings(models_root)) as running:
        async def rejected_with_reason() -> str:
            status = await model_status(running)
            return "" if status is None else next((v.error for v in status.versions
                         if v.state == classifier_pb2.ModelVersionStatus.REJECTED), "")

        async def rejected() -> bool:
            return bool(await rejected_with_reason())

        await wait_for(rejected, "version 1 REJECTED")
        reason = await rejected_with_reason()
        assert "golden set cannot be used" in reason and "mnist/golden.npz" in reason


async def test_an_older_version_is_not_held_to_a_newer_default(
        models_root: Path, mnist: dict[str, np.ndarray],
        trained: tuple[Weights, float]) -> None:
    weights, accuracy = trained
    # Version 1 a clearly weaker model (noisy weights) with an honest card, version 2 the
    # good one: at start-up version 2 loads first and becomes the default, then version 1
    # loads; it would fail the margin against version 2, but it is not taking over.
    noise = np.random.default_rng(0).normal(0, 0.15, weights[0].shape).astype(np.float32)
    weaker = (weights[0] + noise, weights[1])
    held_out = mnist["x_test"][GOLDEN:GOLDEN + 2000].reshape(2000, -1) / 255.0
    weaker_accuracy = float(np.mean((held_out @ weaker[0] + weaker[1]).argmax(axis=1)
                                    == mnist["y_test"][GOLDEN:GOLDEN + 2000]))
    assert 0.6 < weaker_accuracy < accuracy - 0.03  # worse than the margin allows
    export(models_root, weaker, weaker_accuracy, mnist)
    export(models_root, weights, accuracy, mnist)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1, 2])
        status = await running.stub.GetModel(classifier_pb2.GetModelRequest(name="mnist"))
        gates = {v.version: v.gate for v in status.versions}
        assert gates[1].passed and not gates[1].HasField("default_accuracy")
        assert gates[2].passed and status.default_version == 2
