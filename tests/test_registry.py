"""The registry alone: one state per version, routing, retirement after the last request,
listeners. Fake models and predictors (the watcher's tests load real ones)."""

import asyncio
from collections.abc import Hashable
from typing import cast

import numpy as np
import pytest

from digits.modelstore.saved_model import LoadedModel
from digits.service.domain import GateResult, VersionState
from digits.service.errors import InvalidInput, ModelNotFound, ModelUnavailable
from digits.service.models.registry import ModelRegistry, ModelVersion, RegistryListener
from digits.v1.model_card_pb2 import ModelCard

LABELS = tuple(str(digit) for digit in range(10))


class FakeModel:
    """What the registry reads of a LoadedModel: labels and a card."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.labels = LABELS
        self.card = ModelCard(labels=LABELS, experiment=tag)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        return np.zeros((len(pixels), len(LABELS)), np.float32)


def model(tag: str) -> LoadedModel:
    return cast(LoadedModel, FakeModel(tag))


class FakePredictor:
    def __init__(self) -> None:
        self.closed = False

    async def predict(self, pixels: np.ndarray, deadline: float | None = None) -> np.ndarray:
        return np.zeros((len(pixels), len(LABELS)), np.float32)

    async def close(self) -> None:
        self.closed = True


class Recorder(RegistryListener):
    """Attaches predictors and writes down every call, with what it saw at the time."""

    def __init__(self, name: str, log: list[tuple[str, ...]]) -> None:
        self.name = name
        self.log = log

    async def on_load(self, version: ModelVersion) -> None:
        assert version.state is VersionState.LOADING  # not yet taking traffic
        if version.predictor is None:
            version.predictor = FakePredictor()
        self.log.append((self.name, "load", f"{version.name}/{version.version}"))

    async def on_unload(self, version: ModelVersion) -> None:
        # Released by the registry, its predictor closed, before any listener hears of it.
        assert version.in_flight == 0 and version.model is None and version.predictor is None
        self.log.append((self.name, "unload", f"{version.name}/{version.version}"))

    async def on_change(self, registry: ModelRegistry) -> None:
        self.log.append((self.name, "change", str(registry.readiness())))


@pytest.fixture
def log() -> list[tuple[str, ...]]:
    return []


@pytest.fixture
def registry(log: list[tuple[str, ...]]) -> ModelRegistry:
    return ModelRegistry([Recorder("first", log), Recorder("second", log)])


async def load(registry: ModelRegistry, name: str, number: int, tag: str = "",
               source: Hashable = None) -> None:
    await registry.loading(name, number)
    await registry.loaded(name, number, model(tag or f"{name}/{number}"), source or tag)


def states(registry: ModelRegistry, name: str = "mnist") -> dict[int, VersionState]:
    return {v.version: v.state for v in registry.status(name).versions}


async def test_newest_loaded_version_serves_unpinned_requests_older_ones_when_pinned(
        registry: ModelRegistry) -> None:
    await load(registry, "mnist", 1)
    await load(registry, "mnist", 3)
    with registry.acquire("mnist") as version:
        assert (version.name, version.version) == ("mnist", 3)
    with registry.acquire("mnist", 1) as version:
        assert version.model is not None and version.labels == LABELS
    status = registry.status("mnist")
    assert status.default_version == 3
    assert status.default_card is not None and status.default_card.experiment == "mnist/3"
    assert registry.loaded_versions("mnist") == [1, 3]


async def test_each_version_has_exactly_one_state_through_its_life(
        registry: ModelRegistry) -> None:
    await registry.loading("mnist", 1)
    assert states(registry) == {1: VersionState.LOADING}
    with pytest.raises(ModelUnavailable):  # loading does not serve
        registry.acquire("mnist").__enter__()
    await registry.loaded("mnist", 1, model("a"), "a")
    assert states(registry) == {1: VersionState.AVAILABLE}
    await registry.loading("mnist", 2)
    await registry.failed("mnist", 2, "broken card")
    assert states(registry) == {2: VersionState.FAILED, 1: VersionState.AVAILABLE}
    assert registry.status("mnist").versions[0].error == "broken card"
    with registry.acquire("mnist") as version:
        await registry.remove("mnist", 1)
        assert states(registry) == {2: VersionState.FAILED, 1: VersionState.UNLOADING}
        assert version.model is not None  # the running request still has it
    await registry.close()
    assert registry.model_names() == []


async def test_a_removed_version_unloads_only_after_its_requests_finish(
        registry: ModelRegistry, log: list[tuple[str, ...]]) -> None:
    await load(registry, "mnist", 1)
    await load(registry, "mnist", 2)
    with registry.acquire("mnist", 2) as in_flight:
        predictor = cast(FakePredictor, in_flight.predictor)
        await registry.remove("mnist", 2)
        for _ in range(20):  # give an (early, wrong) unload every chance to run
            await asyncio.sleep(0)
        assert not predictor.closed and ("first", "unload", "mnist/2") not in log
        with registry.acquire("mnist") as default:
            assert default.version == 1  # out of routing at once
    await registry.close()
    assert predictor.closed and in_flight.model is None
    unloads = [entry for entry in log if entry[1] == "unload"]
    assert unloads[:2] == [("first", "unload", "mnist/2"), ("second", "unload", "mnist/2")]


async def test_a_reloaded_version_serves_until_its_replacement_is_ready(
        registry: ModelRegistry) -> None:
    await load(registry, "mnist", 1, tag="old")
    await registry.loading("mnist", 1)  # the card changed: a new copy loads
    assert states(registry) == {1: VersionState.AVAILABLE}
    with registry.acquire("mnist") as version:
        assert version.source == "old"
    await registry.loaded("mnist", 1, model("new"), "new")
    with registry.acquire("mnist") as version:
        assert version.source == "new"
    assert states(registry) == {1: VersionState.AVAILABLE}
    await registry.failed("mnist", 1, "a later copy broke")  # a failed replacement
    with registry.acquire("mnist") as version:
        assert version.source == "new"


async def test_listeners_hear_each_load_before_traffic_in_their_order(
        registry: ModelRegistry, log: list[tuple[str, ...]]) -> None:
    await load(registry, "mnist", 1)
    loads = [entry for entry in log if entry[1] == "load"]
    assert loads == [("first", "load", "mnist/1"), ("second", "load", "mnist/1")]
    assert log[-2:] == [("first", "change", "{'mnist': True}"),
                        ("second", "change", "{'mnist': True}")]


async def test_names_are_validated_and_unknown_ones_list_what_exists(
        registry: ModelRegistry) -> None:
    registry.report_problem("cannot read the models directory /models")
    with pytest.raises(ModelUnavailable, match=r"no model is loaded yet.*/models"):
        registry.acquire("mnist").__enter__()
    await load(registry, "mnist", 1)
    await load(registry, "other", 1)
    for name in ("../mnist", "MNIST", "a" * 64, "mnist/1", ""):
        with pytest.raises(InvalidInput, match="model: invalid model name"):
            registry.acquire(name).__enter__()
    with pytest.raises(ModelNotFound, match="available models: mnist, other"):
        registry.acquire("fashion").__enter__()
    with pytest.raises(ModelNotFound, match="no version 2 loaded; loaded versions: 1"):
        registry.acquire("mnist", 2).__enter__()
    with pytest.raises(InvalidInput, match="version: -1"):
        registry.acquire("mnist", -1).__enter__()


async def test_a_model_whose_versions_all_failed_is_unavailable_not_missing(
        registry: ModelRegistry) -> None:
    await load(registry, "mnist", 1)
    await registry.failed("broken", 1, "sha256 mismatch")
    with pytest.raises(ModelUnavailable, match="failed versions: 1"):
        registry.acquire("broken").__enter__()
    assert registry.readiness() == {"mnist": True, "broken": False}
    assert registry.model_names() == ["broken", "mnist"]


async def test_removing_the_last_version_makes_the_model_unready(
        registry: ModelRegistry) -> None:
    await load(registry, "mnist", 1)
    assert registry.serving and registry.readiness() == {"mnist": True}
    await registry.remove("mnist", 1)
    assert not registry.serving and registry.readiness() == {"mnist": False}
    await registry.close()


REJECTED = GateResult(False, "golden accuracy 0.1000 on 500 images is below the minimum 0.5",
                      accuracy=0.1, examples=500)
PASSED = GateResult(True, "passed: golden accuracy 0.9800", accuracy=0.98, examples=500)


async def test_a_rejected_version_serves_only_requests_that_pin_it(
        registry: ModelRegistry, log: list[tuple[str, ...]]) -> None:
    await load(registry, "mnist", 1)
    await registry.loading("mnist", 2)
    await registry.loaded("mnist", 2, model("bad"), "bad", REJECTED)
    assert ("first", "load", "mnist/2") in log  # prepared like any version: it can be pinned
    assert states(registry) == {2: VersionState.REJECTED, 1: VersionState.AVAILABLE}
    with registry.acquire("mnist") as version:
        assert version.version == 1
    with registry.acquire("mnist", 2) as version:
        assert version.model is not None and version.predictor is not None
    status = registry.status("mnist")
    assert status.default_version == 1
    rejected = status.versions[0]
    assert rejected.error == REJECTED.reason and rejected.gate == REJECTED
    assert registry.loaded_versions("mnist") == [1]  # the default candidates
    assert set(registry.sources("mnist")) == {1, 2}  # the watcher does not load it again
    assert registry.default_model("mnist") is not None
    await registry.loaded("mnist", 3, model("good"), "good", PASSED)
    with registry.acquire("mnist") as version:
        assert version.version == 3 and version.gate == PASSED


async def test_a_model_whose_every_version_is_rejected_names_them_to_unpinned_requests(
        registry: ModelRegistry) -> None:
    await registry.loaded("mnist", 1, model("bad"), "bad", REJECTED)
    await registry.failed("mnist", 2, "broken card")
    with pytest.raises(ModelUnavailable, match=r"every loaded version failed the quality "
                       r"gate \(rejected: 1\) \(failed versions: 2\); pin one"):
        registry.acquire("mnist").__enter__()
    assert registry.readiness() == {"mnist": False} and not registry.serving
    assert registry.default_model("mnist") is None
    with registry.acquire("mnist", 1) as version:
        assert version.version == 1
    with pytest.raises(ModelNotFound, match="loaded versions: 1 "):
        registry.acquire("mnist", 2).__enter__()


async def test_a_rejected_version_is_replaced_and_removed_like_any_loaded_one(
        registry: ModelRegistry, log: list[tuple[str, ...]]) -> None:
    await registry.loaded("mnist", 1, model("bad"), "bad", REJECTED)
    await registry.loading("mnist", 1)  # a republished copy: the loaded one stays meanwhile
    assert states(registry) == {1: VersionState.REJECTED}
    await registry.loaded("mnist", 1, model("fixed"), "fixed", PASSED)
    assert states(registry) == {1: VersionState.AVAILABLE}
    await registry.remove("mnist", 1)
    await registry.close()
    assert [entry for entry in log if entry[1] == "unload"][:2] == [
        ("first", "unload", "mnist/1"), ("second", "unload", "mnist/1")]


async def test_stable_takes_unpinned_requests_and_labels_route_by_name(
        registry: ModelRegistry) -> None:
    for number in (1, 2, 3):
        await load(registry, "mnist", number)
    await registry.set_labels("mnist", {"stable": 2, "canary": 3})
    with registry.acquire("mnist") as version:
        assert version.version == 2  # not the newest: stable
    with registry.acquire("mnist", label="canary") as version:
        assert version.version == 3
    assert registry.default_version("mnist") == 2
    status = registry.status("mnist")
    assert (status.default_version, status.labels, status.pending_labels) == (
        2, {"stable": 2, "canary": 3}, {})
    with pytest.raises(InvalidInput, match="both are set"):
        registry.acquire("mnist", 1, "stable").__enter__()
    with pytest.raises(InvalidInput, match="invalid version label"):
        registry.acquire("mnist", label="Not A Label").__enter__()
    with pytest.raises(ModelNotFound, match="has no label 'beta'; its labels: canary, stable"):
        registry.acquire("mnist", label="beta").__enter__()
    await registry.set_labels("mnist", {})
    with registry.acquire("mnist") as version:
        assert version.version == 3  # no stable: the newest again
    assert registry.labelled_versions("mnist") == set()


async def test_a_label_moves_only_onto_a_version_that_loaded_and_passed(
        registry: ModelRegistry) -> None:
    await load(registry, "mnist", 1)
    await registry.set_labels("mnist", {"stable": 1})
    await registry.set_labels("mnist", {"stable": 2})  # not loaded yet
    with registry.acquire("mnist", label="stable") as version:
        assert version.version == 1  # keeps its old version meanwhile
    assert registry.status("mnist").pending_labels == {"stable": 2}
    assert registry.labelled_versions("mnist") == {1, 2}  # the watcher keeps both
    await registry.loading("mnist", 2)
    await registry.loaded("mnist", 2, model("bad"), "bad", REJECTED)
    with registry.acquire("mnist") as version:
        assert version.version == 1  # never onto a rejected version
    await registry.loaded("mnist", 2, model("good"), "good", PASSED)
    with registry.acquire("mnist", label="stable") as version:
        assert version.version == 2
    assert registry.status("mnist").pending_labels == {}
    # A label new to a version that is not loaded routes nowhere until it is.
    await registry.set_labels("mnist", {"stable": 2, "canary": 5})
    with pytest.raises(ModelUnavailable, match="points at version 5, which is not loaded"):
        registry.acquire("mnist", label="canary").__enter__()


async def test_the_canary_gets_its_weighted_share_of_unpinned_requests(
        registry: ModelRegistry) -> None:
    for number in (1, 2):
        await load(registry, "mnist", number)
    await registry.set_labels("mnist", {"stable": 1, "canary": 2}, canary_weight=0.2)
    ids = [f"request-{index}" for index in range(2000)]

    def served(request_id: str) -> int:
        with registry.acquire("mnist", request_id=request_id) as version:
            return version.version

    to_canary = sum(served(request_id) == 2 for request_id in ids)
    assert 0.17 * len(ids) < to_canary < 0.23 * len(ids)
    assert [served(request_id) for request_id in ids] == [served(i) for i in ids]  # by id
    unnamed = sum(served("") == 2 for _ in range(2000))  # no id: random, same share
    assert 0.15 * 2000 < unnamed < 0.25 * 2000
    with registry.acquire("mnist", label="stable") as version:
        assert version.version == 1  # a named label is not split
    assert registry.status("mnist").canary_weight == 0.2
    await registry.set_labels("mnist", {"stable": 1, "canary": 2}, canary_weight=0.0)
    assert {served(request_id) for request_id in ids[:200]} == {1}
    await registry.set_labels("mnist", {"stable": 1}, canary_weight=0.5)  # no canary label
    assert {served(request_id) for request_id in ids[:200]} == {1}
