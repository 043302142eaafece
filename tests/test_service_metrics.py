"""Metric values read back from /metrics after known traffic, and the page is valid."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

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
from support.tools import required_tool

BATCHES = (1, 7, 30, 64)
CLASSIFY = {"protocol": "digits.v1/grpc", "method": "Classify"}


async def _send_known_traffic(running: Running) -> np.ndarray:
    """Four good requests, two bad ones, one for an unknown model; returns the pixels."""
    generator = np.random.default_rng(5)
    sent = []
    for size in BATCHES:
        pixels = generator.integers(0, 256, (size, 28, 28), dtype=np.uint8)
        await running.classify(pixels)
        sent.append(pixels)
    for bad in (dict(top_k=99), dict(model="fashion")):
        with pytest.raises(grpc.aio.AioRpcError):
            await running.classify(sent[0], **bad)
    return np.concatenate(sent)


async def test_metrics_count_the_traffic_that_was_sent(
        model_templates: Any, models_root: Path) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running)
        pixels = await _send_known_traffic(running)
        text = running.scrape()

    model = {"model": "mnist", "version": "1"}
    total = len(pixels)
    assert sample_value(text, "digits_requests_total",
                        CLASSIFY | {"code": "OK"}) == len(BATCHES)
    assert sample_value(text, "digits_requests_total",
                        CLASSIFY | {"code": "INVALID_ARGUMENT"}) == 1
    assert sample_value(text, "digits_requests_total",
                        CLASSIFY | {"code": "NOT_FOUND"}) == 1
    assert sample_value(text, "digits_request_duration_seconds_count",
                        CLASSIFY) == len(BATCHES) + 2
    assert sample_value(text, "digits_images_classified_total", model) == total

    probabilities = expected_probabilities(model_templates.weights_a, pixels)
    predicted = np.bincount(probabilities.argmax(axis=1), minlength=10)
    for digit in range(10):
        value = sample_value(text, "digits_predictions_total",
                             model | {"label": str(digit)})
        assert (value or 0) == predicted[digit]
    assert sample_value(text, "digits_prediction_confidence_count", model) == total
    assert sample_value(text, "digits_prediction_confidence_sum", model) == pytest.approx(
        probabilities.max(axis=1).sum(), rel=1e-5)

    # Every image went through a model call; batches were at most the request sizes.
    model = {"model": "mnist"}  # the batching metrics are by model only
    assert sample_value(text, "digits_batch_size_images_sum", model) == total
    assert sample_value(text, "digits_inference_duration_seconds_count", model) == \
        sample_value(text, "digits_batch_size_images_count", model)
    assert sample_value(text, "digits_queue_depth_images", model) == 0
    assert sample_value(text, "digits_model_versions_loaded", {"model": "mnist"}) == 1
    assert sample_value(text, "digits_model_default_version", {"model": "mnist"}) == 1
    assert sample_value(text, "digits_model_load_duration_seconds_count") == 1
    assert sample_value(text, "digits_model_load_failures_total") == 0
    assert (sample_value(text, "digits_model_reload_duration_seconds_count") or 0) >= 1
    # A name no model answers to never becomes a label value.
    assert "fashion" not in text


async def test_the_metrics_page_passes_promtool(
        model_templates: Any, models_root: Path) -> None:
    promtool = required_tool("promtool", "prometheus")
    install(model_templates.dense_a, models_root, "mnist", 1)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_serving(running)
        await _send_known_traffic(running)
        text = running.scrape()
    checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked


async def test_prediction_series_are_by_version_and_go_when_it_unloads(
        models_root: Path, model_templates: Any) -> None:
    install(model_templates.dense_a, models_root, "mnist", 1)
    install(model_templates.dense_b, models_root, "mnist", 2)
    pixels = np.zeros((3, 28, 28), np.uint8)
    async with running_server(loopback_settings(models_root)) as running:
        await wait_available(running, "mnist", [1, 2])
        for version in (1, 2):
            await running.classify(pixels, version=version)
        text = running.scrape()
        for number in ("1", "2"):
            labels = {"model": "mnist", "version": number}
            assert sample_value(text, "digits_images_classified_total", labels) == 3
            assert sample_value(text, "digits_prediction_confidence_count", labels) == 3
        shutil.rmtree(models_root / "mnist" / "1")
        await wait_available(running, "mnist", [2])

        async def gone() -> bool:
            return '"1"' not in "".join(
                line for line in running.scrape().splitlines()
                if line.startswith(("digits_images_classified_total",
                                    "digits_predictions_total",
                                    "digits_prediction_confidence")))

        await wait_for(gone, "version 1's prediction series removed")
        text = running.scrape()
        assert sample_value(text, "digits_images_classified_total",
                            {"model": "mnist", "version": "2"}) == 3
