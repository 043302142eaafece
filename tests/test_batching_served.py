"""Batching behind the real server: concurrent clients of mixed sizes get their own answers."""

import asyncio
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from digits.v1 import classifier_pb2

from support.models import expected_probabilities, install
from support.prometheus import sample_value
from support.servers import Running, loopback_settings, running_server, wait_serving

MAX_BATCH = 8
# Sizes around and across MAX_BATCH, so requests are coalesced, split, and both at once.
SIZES = [1, 3, 17, 1, 8, 2, 40, 1, 5, 9, 1, 1, 23, 4, 1, 16]
ROUNDS = 3


def probabilities_of(response: Any) -> np.ndarray:
    return np.array([list(prediction.probabilities) for prediction in response.predictions])


async def test_concurrent_clients_of_interleaved_sizes_get_exactly_their_own_answers(
    model_templates: Any, models_root: Path
) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    settings = loopback_settings(
        models_root, max_batch_size=MAX_BATCH, batch_timeout=0.005, max_queue_images=4096)
    async with running_server(settings) as running:
        await wait_serving(running, "mnist")
        generator = np.random.default_rng(5)

        async def client(size: int) -> None:
            for _ in range(ROUNDS):
                pixels = generator.integers(0, 256, (size, 28, 28), dtype=np.uint8)
                request = (classifier_pb2.ClassifyRequest(packed_pixels=pixels.tobytes())
                           if size > 1 else classifier_pb2.ClassifyRequest(
                               images=[classifier_pb2.Image(pixels=pixels[0].tobytes())]))
                response = await running.stub.Classify(request, timeout=30)
                np.testing.assert_allclose(
                    probabilities_of(response),
                    expected_probabilities(model_templates.weights_a, pixels), atol=1e-5)

        await asyncio.gather(*(client(size) for size in SIZES))
        await assert_every_image_computed_once(running, sum(SIZES) * ROUNDS)


async def assert_every_image_computed_once(running: Running, images: int) -> None:
    page = await asyncio.to_thread(running.scrape)
    labels = {"model": "mnist"}
    calls = sample_value(page, "digits_batch_size_images_count", labels)
    assert sample_value(page, "digits_batch_size_images_sum", labels) == images
    # No model call was larger than the maximum batch size.
    assert sample_value(page, "digits_batch_size_images_bucket",
                        {**labels, "le": str(float(MAX_BATCH))}) == calls
    assert sample_value(page, "digits_queue_depth_images", labels) == 0


async def test_full_queue_answers_resource_exhausted_over_grpc(
    model_templates: Any, models_root: Path
) -> None:
    # The slow model holds each call for a while, so the small queue fills up.
    install(model_templates.slow, models_root, "mnist", 1)
    settings = loopback_settings(
        models_root, max_batch_size=2, batch_timeout=0, max_queue_images=4,
        max_images_per_request=4)
    async with running_server(settings) as running:
        await wait_serving(running, "mnist")
        pixels = np.zeros((4, 28, 28), np.uint8)
        request = classifier_pb2.ClassifyRequest(packed_pixels=pixels.tobytes())
        calls = [asyncio.ensure_future(running.stub.Classify(request, timeout=30))
                 for _ in range(4)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        codes = [outcome.code() if isinstance(outcome, grpc.aio.AioRpcError) else "OK"
                 for outcome in outcomes]
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes
        assert "OK" in codes, codes
        assert set(codes) <= {"OK", grpc.StatusCode.RESOURCE_EXHAUSTED}, codes


@pytest.mark.parametrize("batching", [True, False])
async def test_expired_deadline_is_not_computed_over_grpc(
    model_templates: Any, models_root: Path, batching: bool
) -> None:
    install(model_templates.slow, models_root, "mnist", 1)
    settings = loopback_settings(models_root, max_batch_size=1, batch_timeout=0,
                                 batching=batching, inference_threads=1)
    async with running_server(settings) as running:
        await wait_serving(running, "mnist")
        pixels = np.zeros((1, 28, 28), np.uint8).tobytes()
        request = classifier_pb2.ClassifyRequest(packed_pixels=pixels)
        # The first call occupies the model; the second's deadline ends while it waits.
        first = asyncio.ensure_future(running.stub.Classify(request, timeout=30))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await running.stub.Classify(request, timeout=0.2)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await first
        page = await asyncio.to_thread(running.scrape)
        # Only the first request's image reached the model.
        assert sample_value(page, "digits_batch_size_images_sum", {"model": "mnist"}) == 1
