"""A served volume changing under load: hot swaps, broken versions, health, drain, deadlines."""

import asyncio
import shutil
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from digits.v1 import classifier_pb2

from support.load import Load, seen_everywhere
from support.models import SLOW_MODEL_SECONDS, corrupt_copy, install
from support.polling import wait_for
from support.prometheus import sample_value
from support.servers import Running, loopback_settings, running_server, wait_available, wait_serving


async def test_hot_swap_under_continuous_load_fails_no_request(
        model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running, "mnist", version=1)
        load = Load(running, {1: model_templates.weights_a, 2: model_templates.weights_b})
        await load.until(200)
        install(model_templates.dense_b, models_root, "mnist", 2)
        await wait_for(lambda: seen_everywhere(load, 2), "clients answered by version 2")
        await load.until(200)
        shutil.rmtree(models_root / "mnist" / "1")  # v1 unloads under load
        await wait_available(running, "mnist", [2])
        await load.until(200)
        await load.stop()
    assert load.failures == []
    assert set().union(*load.versions_seen) == {1, 2}


async def test_a_corrupt_version_dropped_in_while_serving_is_ignored(
        model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running, "mnist", version=1)
        load = Load(running, {1: model_templates.weights_a})
        await load.until(20)
        corrupt_copy(model_templates.dense_b, models_root, "mnist", 2, "sha256")

        async def failed() -> bool:
            return sample_value(running.scrape(), "digits_model_load_failures_total") == 1

        await wait_for(failed, "the failed load to be counted")
        await load.until(20)
        await load.stop()
        status = await running.stub.GetModel(
            classifier_pb2.GetModelRequest(name="mnist"), timeout=5)
        assert status.default_version == 1
        assert status.versions[0].version == 2
        assert status.versions[0].state == classifier_pb2.ModelVersionStatus.FAILED
        assert "sha256 mismatch" in status.versions[0].error
        assert await running.status() == "SERVING"
    assert load.failures == []
    assert set().union(*load.versions_seen) == {1}


async def test_health_transitions_from_start_to_shutdown(
        model_templates: Any, models_root: Path) -> None:
    async with running_server(loopback_settings(models_root)) as running:
        services = ("", "digits.v1.Classifier", "mnist")
        assert [await running.status(s) for s in services] == ["NOT_SERVING"] * 3
        watch = running.health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING

        install(model_templates.dense_a, models_root, "mnist", 1)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        assert [await running.status(s) for s in services] == ["SERVING"] * 3

        install(model_templates.dense_a, models_root, "other", 1)
        await wait_serving(running, "other")
        shutil.rmtree(models_root / "mnist" / "1")

        async def mnist_down() -> bool:
            return await running.status("mnist") == "NOT_SERVING"

        await wait_for(mnist_down, "mnist NOT_SERVING once its only version is gone")
        assert await running.status("") == "SERVING"  # "other" still serves

        stopping = asyncio.ensure_future(running.server.stop(grace=5))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


async def test_stop_drains_in_flight_requests_and_refuses_new_ones(
        model_templates: Any, models_root: Path) -> None:
    install(model_templates.slow, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running)
        pixels = np.zeros((1, 28, 28), np.uint8)
        requests = [asyncio.ensure_future(running.classify(pixels)) for _ in range(3)]

        async def all_in_flight() -> bool:
            return running.server.in_flight == 3

        await wait_for(all_in_flight, "3 requests in flight")
        stopping = asyncio.ensure_future(running.server.stop(grace=30))
        await asyncio.sleep(0)  # let stop() begin: health first, then no new calls
        responses = await asyncio.gather(*requests)
        assert [len(r.predictions) for r in responses] == [1, 1, 1]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await running.classify(pixels)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        await stopping


async def test_expired_requests_are_dropped_not_computed(
        model_templates: Any, models_root: Path) -> None:
    """A request whose deadline passes while the model is busy is never run."""
    install(model_templates.slow, models_root, "mnist", 1)
    settings = loopback_settings(models_root, inference_threads=1, batch_timeout=0.0)
    async with running_server(settings) as running:
        await wait_serving(running)
        pixels = np.zeros((1, 28, 28), np.uint8)
        busy = asyncio.ensure_future(running.classify(pixels))
        await wait_for(_batches_started(running, 1), "the first batch to start")
        request = classifier_pb2.ClassifyRequest(packed_pixels=pixels.tobytes())
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await running.stub.Classify(request, timeout=SLOW_MODEL_SECONDS / 4)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await busy
        # Another request after the expired one: only the first and this one ran.
        await running.classify(pixels)
        text = running.scrape()
        labels = {"model": "mnist"}
        assert sample_value(text, "digits_batch_size_images_count", labels) == 2
        assert sample_value(text, "digits_requests_total",
                            {"protocol": "digits.v1/grpc", "method": "Classify",
                             "code": "DEADLINE_EXCEEDED"}) == 1


def _batches_started(running: Running, count: int) -> Any:
    async def started() -> bool:
        value = sample_value(running.scrape(), "digits_queue_wait_seconds_count",
                             {"model": "mnist"})
        return value is not None and value >= count

    return started
