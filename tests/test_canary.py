"""The canary guard alone: a canary less sure than stable, or failing more, is halted
once both have enough images in a window; an equal one is not. A real registry with fake
models (test_version_labels.py runs it on a real server)."""

from typing import cast

import numpy as np
import pytest

from digits.modelstore.saved_model import LoadedModel
from digits.service.metrics import ServiceMetrics
from digits.service.models import canary as canary_module
from digits.service.models.canary import CanaryGuard
from digits.service.models.registry import ModelRegistry
from digits.service.settings import VolumeSettings
from digits.v1.model_card_pb2 import ModelCard

LABELS = tuple(str(digit) for digit in range(10))
SURE = np.eye(10, dtype=np.float32)[np.arange(40) % 10]  # 40 images, confidence 1
UNSURE = np.full((40, 10), 0.1, np.float32)  # 40 images, confidence 0.1


class FakeModel:
    labels = LABELS
    card = ModelCard(labels=LABELS)


async def labelled_registry(weight: float = 0.5) -> ModelRegistry:
    registry = ModelRegistry()
    for number in (1, 2):
        await registry.loaded("mnist", number, cast(LoadedModel, FakeModel()), number)
    await registry.set_labels("mnist", {"stable": 1, "canary": 2}, canary_weight=weight)
    return registry


def guard(registry: ModelRegistry, metrics: ServiceMetrics) -> CanaryGuard:
    return CanaryGuard(VolumeSettings(canary_window=60, canary_min_images=100,
                                      canary_max_excess=0.05), registry, metrics)


def unpinned_versions(registry: ModelRegistry) -> set[int]:
    versions = set()
    for index in range(300):
        with registry.acquire("mnist", request_id=f"id-{index}") as version:
            versions.add(version.version)
    return versions


async def test_a_less_sure_canary_is_halted_once_both_have_enough_images() -> None:
    registry, metrics = await labelled_registry(), ServiceMetrics()
    watch = guard(registry, metrics)
    assert unpinned_versions(registry) == {1, 2}
    for _ in range(2):  # 80 images each: not enough to judge
        watch.observe("mnist", 1, SURE)
        watch.observe("mnist", 2, UNSURE)
    assert registry.canary_halted("mnist") == ""
    watch.observe("mnist", 1, SURE)
    watch.observe("mnist", 2, UNSURE)  # 120 each
    reason = registry.canary_halted("mnist")
    assert reason.startswith("canary version 2 halted: low-confidence share 1.000 against "
                             "stable's 0.000 over 120 and 120 images")
    assert unpinned_versions(registry) == {1}
    with registry.acquire("mnist", label="canary") as version:
        assert version.version == 2  # named, it still answers
    assert registry.status("mnist").canary_halted == reason
    assert metrics.registry.get_sample_value("digits_canary_halts_total",
                                             {"model": "mnist"}) == 1
    # A changed canary (here its weight) gets a fresh start.
    await registry.set_labels("mnist", {"stable": 1, "canary": 2}, canary_weight=0.4)
    assert registry.canary_halted("mnist") == "" and unpinned_versions(registry) == {1, 2}


async def test_a_canary_whose_calls_fail_is_halted() -> None:
    registry, metrics = await labelled_registry(), ServiceMetrics()
    watch = guard(registry, metrics)
    for _ in range(3):
        watch.observe("mnist", 1, SURE)
        watch.observe("mnist", 2, SURE)
    assert registry.canary_halted("mnist") == ""
    watch.observe("mnist", 2, None)  # 1 of its 4 calls failed, none of stable's 3
    assert "failed model calls 0.250 against stable's 0.000" in registry.canary_halted("mnist")


async def test_a_canary_as_good_as_stable_keeps_its_share() -> None:
    registry, metrics = await labelled_registry(), ServiceMetrics()
    watch = guard(registry, metrics)
    for _ in range(10):
        watch.observe("mnist", 1, UNSURE)
        watch.observe("mnist", 2, UNSURE)
    assert registry.canary_halted("mnist") == "" and unpinned_versions(registry) == {1, 2}


async def test_counts_start_again_in_every_window(monkeypatch: pytest.MonkeyPatch) -> None:
    registry, metrics = await labelled_registry(), ServiceMetrics()
    watch = guard(registry, metrics)
    now = [1000.0]
    monkeypatch.setattr(canary_module.time, "monotonic", lambda: now[0])
    for _ in range(2):
        watch.observe("mnist", 1, SURE)
        watch.observe("mnist", 2, UNSURE)
    now[0] += 61  # the window ends: 80 images each are forgotten
    watch.observe("mnist", 1, SURE)
    watch.observe("mnist", 2, UNSURE)
    assert registry.canary_halted("mnist") == ""
