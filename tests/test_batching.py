"""The predictors alone, without gRPC: a fake model that echoes an id written in each image.

The flush policy has table tests of its own (test_batching_policy.py); these run the
batcher's queue and delivery, and the unbatched predictor, for real on an event loop.
"""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from digits.service import errors
from digits.service.batching import Batcher, Predictor, make_predictor
from digits.service.batching.policy import FlushPolicy
from digits.service.metrics import ServiceMetrics
from digits.service.settings import BatchingSettings

from support.polling import wait_for

CLASSES = 10
MODEL = "mnist"


def images(*ids: int) -> np.ndarray:
    """Images whose first two pixels spell their id, so every output row can be traced."""
    pixels = np.zeros((len(ids), 28, 28), dtype=np.uint8)
    for row, image_id in enumerate(ids):
        pixels[row, 0, 0], pixels[row, 0, 1] = image_id % 256, image_id // 256
    return pixels


def ids_of(rows: np.ndarray) -> list[int]:
    """The ids the fake model put into output rows."""
    return [int(row[0]) + 256 * int(row[1]) for row in rows]


class FakeModel:
    """Echoes each image's id into its output row; records calls; can block and fail."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()  # set once a call is inside predict
        self.fail_on: int | None = None
        self._lock = threading.Lock()
        self.inside = 0  # calls running now
        self.most_inside = 0  # the most that ever ran at once

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.started.set()
        try:
            return self._compute(pixels)
        finally:
            with self._lock:
                self.inside -= 1

    def _compute(self, pixels: np.ndarray) -> np.ndarray:
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        call_ids = [int(p[0, 0]) + 256 * int(p[0, 1]) for p in pixels]
        self.calls.append(call_ids)
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and self.fail_on in call_ids:
            raise RuntimeError(f"model failure on a batch holding image {self.fail_on}")
        output = np.zeros((len(pixels), CLASSES), dtype=np.float32)
        output[:, 0] = pixels[:, 0, 0]
        output[:, 1] = pixels[:, 0, 1]
        return output

    def computed(self) -> list[int]:
        return [image_id for call in self.calls for image_id in call]

    async def wait_started(self) -> None:
        """Block until a model call is running (readiness by polling an event)."""
        if not await asyncio.to_thread(self.started.wait, 10):
            raise TimeoutError("the model was never called")


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="model")
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel()
    yield fake
    fake.gate.set()  # never leave an executor thread blocked


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


def make_batcher(
    model: FakeModel,
    metrics: ServiceMetrics,
    executor: ThreadPoolExecutor,
    *,
    max_batch_size: int = 64,
    batch_timeout: float = 0.002,
    max_queue_images: int = 1000,
    enabled: bool = True,
    idle_gap: float = 0.001,
    concurrent_batches: int = BatchingSettings.concurrent_batches,
) -> Any:
    """A Batcher (batching on, with its policy's idle gap) or an UnbatchedPredictor."""
    settings = BatchingSettings(enabled=enabled, max_batch_size=max_batch_size,
                                batch_timeout=batch_timeout, max_queue_images=max_queue_images,
                                concurrent_batches=concurrent_batches)
    if not enabled:
        return make_predictor(model, settings, metrics.batching(MODEL), executor, name=MODEL)
    return Batcher(model, settings, metrics.batching(MODEL), executor, name=MODEL,
                   policy=FlushPolicy(max_batch_size, batch_timeout, idle_gap,
                                      max_concurrent_batches=concurrent_batches))


@pytest.fixture
async def closing() -> AsyncIterator[list[Predictor]]:
    """Predictors a test registers here are closed at its end, even when it fails."""
    batchers: list[Predictor] = []
    yield batchers
    for batcher in batchers:
        await asyncio.wait_for(batcher.close(), timeout=30)


async def test_concurrent_calls_coalesce_into_one_model_call(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    # A timeout far beyond the test: only a full batch can trigger this flush.
    batcher = make_batcher(model, metrics, executor, max_batch_size=8, batch_timeout=60)
    closing.append(batcher)
    results = await asyncio.gather(*(batcher.predict(images(i)) for i in range(8)))
    assert model.calls == [list(range(8))]
    assert [ids_of(r) for r in results] == [[i] for i in range(8)]
    assert all(r.shape == (1, CLASSES) and r.dtype == np.float32 for r in results)


async def coalesce_first(batcher: Batcher, ids: range) -> None:
    """Send ``ids`` at once: one batch of that many requests, which the next batch expects."""
    await asyncio.gather(*(batcher.predict(images(i)) for i in ids))


async def test_a_lone_client_never_waits_for_others(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    # Timeout and idle gap far beyond the test: only "the previous batch held one request
    # and one is queued" can start these batches.
    batcher = make_batcher(model, metrics, executor, max_batch_size=8, batch_timeout=60,
                           idle_gap=60)
    closing.append(batcher)
    for image_id in range(3):
        assert ids_of(await asyncio.wait_for(batcher.predict(images(image_id)), 30)) == [
            image_id]
    assert model.calls == [[0], [1], [2]]


async def test_batch_starts_once_as_many_requests_as_last_time_are_queued(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=64, batch_timeout=60,
                           idle_gap=60)
    closing.append(batcher)
    await coalesce_first(batcher, range(4))
    first_three = [asyncio.ensure_future(batcher.predict(images(i))) for i in (10, 11, 12)]
    for _ in range(20):  # give the worker every chance to start too early
        await asyncio.sleep(0.001)
    assert model.calls == [[0, 1, 2, 3]]  # three of the expected four: still waiting
    fourth = batcher.predict(images(13))
    results = await asyncio.wait_for(asyncio.gather(*first_three, fourth), 30)
    assert model.calls == [[0, 1, 2, 3], [10, 11, 12, 13]]
    assert [ids_of(r) for r in results] == [[10], [11], [12], [13]]


async def test_requests_arriving_while_the_model_runs_make_the_next_batch_wait(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    # Arrivals during a model call mean other callers are in flight: the next batch
    # waits for them (here until arrivals pause for the idle gap) instead of starting.
    batcher = make_batcher(model, metrics, executor, max_batch_size=64, batch_timeout=60,
                           idle_gap=0.5)
    closing.append(batcher)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.predict(images(0)))
    await model.wait_started()
    during = [asyncio.ensure_future(batcher.predict(images(i))) for i in (1, 2)]
    await asyncio.sleep(0)
    model.gate.set()
    assert ids_of(await first) == [0]
    late = batcher.predict(images(3))  # well within the idle gap of the last arrival
    results = await asyncio.wait_for(asyncio.gather(*during, late), 30)
    assert model.calls == [[0], [1, 2, 3]]
    assert [ids_of(r) for r in results] == [[1], [2], [3]]


async def test_partial_batch_starts_when_the_oldest_has_waited_batch_timeout(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=64, batch_timeout=0.05,
                           idle_gap=60)
    closing.append(batcher)
    await coalesce_first(batcher, range(4))
    began = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(batcher.predict(images(10)), batcher.predict(images(11))), 30)
    assert time.monotonic() - began >= 0.05  # it did wait for the other two expected
    assert model.calls == [[0, 1, 2, 3], [10, 11]]
    assert [ids_of(r) for r in results] == [[10], [11]]


async def test_partial_batch_starts_when_arrivals_pause_for_the_idle_gap(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=64, batch_timeout=60,
                           idle_gap=0.05)
    closing.append(batcher)
    await coalesce_first(batcher, range(4))
    began = time.monotonic()
    result = await asyncio.wait_for(batcher.predict(images(10)), 30)
    assert time.monotonic() - began >= 0.05
    assert ids_of(result) == [10]
    assert model.calls == [[0, 1, 2, 3], [10]]


async def test_zero_batch_timeout_never_waits(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=64, batch_timeout=0,
                           idle_gap=60)
    closing.append(batcher)
    await coalesce_first(batcher, range(4))
    assert ids_of(await asyncio.wait_for(batcher.predict(images(10)), 30)) == [10]


async def test_requests_queued_while_the_model_runs_form_the_next_batch(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=64, batch_timeout=0)
    closing.append(batcher)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.predict(images(0)))
    await model.wait_started()
    rest = [asyncio.ensure_future(batcher.predict(images(i))) for i in range(1, 6)]
    await asyncio.sleep(0)  # let every caller enqueue before the model is released
    model.gate.set()
    await asyncio.gather(first, *rest)
    assert model.calls == [[0], [1, 2, 3, 4, 5]]


async def test_large_request_is_split_at_max_batch_size_and_reassembled(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=4, batch_timeout=0)
    closing.append(batcher)
    result = await batcher.predict(images(*range(10)))
    assert [len(call) for call in model.calls] == [4, 4, 2]
    assert ids_of(result) == list(range(10))
    assert result.shape == (10, CLASSES)


@pytest.mark.parametrize("concurrent_batches", [1, 2])
async def test_full_batches_run_side_by_side_up_to_the_concurrency(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor], concurrent_batches: int,
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=4, batch_timeout=60,
                           idle_gap=60, concurrent_batches=concurrent_batches)
    closing.append(batcher)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.predict(images(*range(4))))
    await model.wait_started()
    # A full batch and the tail of a split request wait while the first batch runs.
    full = asyncio.ensure_future(batcher.predict(images(*range(10, 14))))
    split = asyncio.ensure_future(batcher.predict(images(*range(20, 26))))

    async def inside(count: int) -> bool:
        return model.inside == count

    await wait_for(lambda: inside(concurrent_batches), f"{concurrent_batches} model calls")
    for _ in range(20):  # give the worker every chance to start more than allowed
        await asyncio.sleep(0.001)
    assert model.most_inside == concurrent_batches
    closed = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.01)
    assert not closed.done()  # close() waits for the running batches
    model.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, full, split, closed), 30)
    assert [ids_of(r) for r in results[:3]] == [
        list(range(4)), list(range(10, 14)), list(range(20, 26))]
    assert model.most_inside == concurrent_batches


async def test_a_partial_batch_waits_for_the_running_one(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    # Small requests keep gathering while a batch runs, concurrency or not.
    batcher = make_batcher(model, metrics, executor, max_batch_size=8, batch_timeout=0,
                           concurrent_batches=2)
    closing.append(batcher)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.predict(images(0)))
    await model.wait_started()
    rest = [asyncio.ensure_future(batcher.predict(images(i))) for i in range(1, 4)]
    for _ in range(20):
        await asyncio.sleep(0.001)
    assert model.most_inside == 1
    model.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 30)
    assert model.calls == [[0], [1, 2, 3]]


async def test_interleaved_sizes_each_get_exactly_their_own_rows(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=7, batch_timeout=0.001)
    closing.append(batcher)
    sizes = [1, 5, 13, 2, 7, 1, 30, 3, 8, 1, 4]
    requests, next_id = [], 0
    for size in sizes:
        requests.append(list(range(next_id, next_id + size)))
        next_id += size
    results = await asyncio.gather(*(batcher.predict(images(*ids)) for ids in requests))
    assert [ids_of(r) for r in results] == requests
    assert max(len(call) for call in model.calls) <= 7
    assert sorted(model.computed()) == list(range(next_id))  # each image computed once


async def test_full_queue_rejects_with_overloaded(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(
        model, metrics, executor, max_batch_size=2, batch_timeout=0, max_queue_images=5
    )
    closing.append(batcher)
    model.gate.clear()
    running = asyncio.ensure_future(batcher.predict(images(0, 1)))  # taken out of the queue
    await model.wait_started()
    queued = [asyncio.ensure_future(batcher.predict(images(*ids))) for ids in ([2, 3], [4, 5, 6])]
    await asyncio.sleep(0)
    assert batcher.queued_images == 5
    with pytest.raises(errors.Overloaded, match="the batching queue is full"):
        await batcher.predict(images(7))
    assert metrics.registry.get_sample_value(
        "digits_queue_depth_images", {"model": MODEL}) == 5
    model.gate.set()
    results = await asyncio.gather(running, *queued)
    assert [ids_of(r) for r in results] == [[0, 1], [2, 3], [4, 5, 6]]
    assert 7 not in model.computed()
    assert batcher.queued_images == 0


@pytest.mark.parametrize("enabled", [True, False])
async def test_request_larger_than_the_whole_queue_is_refused_not_queued(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor], enabled: bool,
) -> None:
    # The data plane never sends one (the settings keep max_images_per_request within
    # max_queue_images); were one sent, it must not wait forever.
    batcher = make_batcher(model, metrics, executor, max_queue_images=4, enabled=enabled)
    closing.append(batcher)
    with pytest.raises(errors.Overloaded, match="0 of 4 images waiting"):
        await batcher.predict(images(*range(5)))
    assert model.calls == []


@pytest.mark.parametrize("enabled", [True, False])
async def test_already_expired_deadline_is_never_computed(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor], enabled: bool,
) -> None:
    batcher = make_batcher(model, metrics, executor, enabled=enabled)
    closing.append(batcher)
    with pytest.raises(errors.DeadlineExpired):
        await batcher.predict(images(1), deadline=time.monotonic() - 1)
    assert model.calls == []


@pytest.mark.parametrize("enabled", [True, False])
async def test_deadline_expiring_in_the_queue_is_dropped_not_computed(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor], enabled: bool,
) -> None:
    # One executor thread, so with batching off the second call also waits its turn.
    single = ThreadPoolExecutor(max_workers=1)
    batcher = make_batcher(model, metrics, single, max_batch_size=1, batch_timeout=0,
                           enabled=enabled)
    closing.append(batcher)
    model.gate.clear()
    running = asyncio.ensure_future(batcher.predict(images(0)))
    await model.wait_started()
    deadline = time.monotonic() + 0.05
    doomed = asyncio.ensure_future(batcher.predict(images(1), deadline=deadline))
    patient = asyncio.ensure_future(batcher.predict(images(2), deadline=deadline + 60))
    async def deadline_passed() -> bool:
        return time.monotonic() > deadline

    await wait_for(deadline_passed, "the deadline to pass")
    model.gate.set()
    assert ids_of(await running) == [0]
    with pytest.raises(errors.DeadlineExpired):
        await doomed
    assert ids_of(await patient) == [2]
    assert model.computed() == [0, 2]
    await batcher.close()
    single.shutdown(wait=True)


async def test_model_error_reaches_exactly_the_callers_of_that_batch(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=3, batch_timeout=0)
    closing.append(batcher)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.predict(images(0)))
    await model.wait_started()
    # Queued in order, these form the batches [1, 2, 3] (fails on 2) and [4, 5].
    later = [asyncio.ensure_future(batcher.predict(images(*ids))) for ids in ([1], [2, 3], [4, 5])]
    await asyncio.sleep(0)
    model.fail_on = 2
    model.gate.set()
    outcomes = await asyncio.gather(first, *later, return_exceptions=True)
    # [1, 2, 3] is a full batch: it ran beside [0], so the calls may end in either order.
    assert sorted(model.calls) == [[0], [1, 2, 3], [4, 5]]
    assert ids_of(outcomes[0]) == [0]  # type: ignore[arg-type]
    assert isinstance(outcomes[1], RuntimeError) and isinstance(outcomes[2], RuntimeError)
    assert ids_of(outcomes[3]) == [4, 5]  # type: ignore[arg-type]
    # The worker survives a failed batch.
    assert ids_of(await batcher.predict(images(6))) == [6]


async def test_failed_part_of_a_split_request_fails_it_and_skips_its_other_parts(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    # One batch at a time, so the later parts have not started when the first fails.
    batcher = make_batcher(model, metrics, executor, max_batch_size=2, batch_timeout=0,
                           concurrent_batches=1)
    closing.append(batcher)
    model.fail_on = 1
    with pytest.raises(RuntimeError):
        await batcher.predict(images(0, 1, 2, 3, 4, 5))
    assert model.calls == [[0, 1]]
    assert ids_of(await batcher.predict(images(9))) == [9]
    assert batcher.queued_images == 0


async def test_cancelled_caller_is_not_computed(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=4, batch_timeout=0)
    closing.append(batcher)
    model.gate.clear()
    first = asyncio.ensure_future(batcher.predict(images(0)))
    await model.wait_started()
    gone = asyncio.ensure_future(batcher.predict(images(1)))
    kept = asyncio.ensure_future(batcher.predict(images(2)))
    await asyncio.sleep(0)
    gone.cancel()
    model.gate.set()
    assert ids_of(await first) == [0] and ids_of(await kept) == [2]
    assert gone.cancelled()
    assert model.computed() == [0, 2]
    assert batcher.queued_images == 0


async def test_disabled_batching_runs_each_call_alone_in_the_executor(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=4, batch_timeout=60,
                           enabled=False)
    closing.append(batcher)
    results = await asyncio.gather(*(batcher.predict(images(i)) for i in range(5)))
    assert sorted(model.calls) == [[i] for i in range(5)]
    assert [ids_of(r) for r in results] == [[i] for i in range(5)]
    assert all(name.startswith("model") for name in model.threads)
    big = await batcher.predict(images(*range(100, 110)))
    assert ids_of(big) == list(range(100, 110))
    assert [len(call) for call in model.calls[5:]] == [4, 4, 2]


async def test_disabled_batching_still_bounds_the_queue(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_queue_images=3, enabled=False)
    closing.append(batcher)
    model.gate.clear()
    held = asyncio.ensure_future(batcher.predict(images(0, 1, 2)))
    await model.wait_started()
    with pytest.raises(errors.Overloaded):
        await batcher.predict(images(3))
    model.gate.set()
    assert ids_of(await held) == [0, 1, 2]


async def test_model_runs_off_the_event_loop_thread(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor)
    closing.append(batcher)
    await batcher.predict(images(1))
    assert threading.current_thread().name not in model.threads
    assert all(name.startswith("model") for name in model.threads)


@pytest.mark.parametrize("enabled", [True, False])
async def test_close_finishes_queued_work_then_refuses_new_work(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor, enabled: bool,
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=2, batch_timeout=60,
                           enabled=enabled)
    model.gate.clear()
    pending = [asyncio.ensure_future(batcher.predict(images(i))) for i in range(5)]
    await model.wait_started()
    closed = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0)
    assert not closed.done()
    with pytest.raises(errors.ModelUnavailable):
        await batcher.predict(images(9))
    model.gate.set()
    await asyncio.wait_for(closed, timeout=30)
    assert all(task.done() for task in pending)
    assert [ids_of(task.result()) for task in pending] == [[i] for i in range(5)]
    assert sorted(model.computed()) == [0, 1, 2, 3, 4]


async def test_close_of_an_idle_batcher_returns(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
) -> None:
    batcher = make_batcher(model, metrics, executor)
    await batcher.predict(images(1))
    await asyncio.wait_for(batcher.close(), timeout=30)
    await asyncio.wait_for(make_batcher(model, metrics, executor).close(), timeout=30)


async def test_metrics_follow_the_traffic(
    model: FakeModel, metrics: ServiceMetrics, executor: ThreadPoolExecutor,
    closing: list[Predictor],
) -> None:
    batcher = make_batcher(model, metrics, executor, max_batch_size=4, batch_timeout=60)
    closing.append(batcher)
    await asyncio.gather(*(batcher.predict(images(i)) for i in range(4)))  # one batch of 4
    await batcher.predict(images(*range(10, 16)))  # batches of 4 and 2
    sample = metrics.registry.get_sample_value
    labels = {"model": MODEL}
    assert sample("digits_batch_size_images_count", labels) == len(model.calls) == 3
    assert sample("digits_batch_size_images_sum", labels) == 10
    assert sample("digits_batch_size_images_bucket", {**labels, "le": "2.0"}) == 1
    assert sample("digits_inference_duration_seconds_count", labels) == 3
    assert sample("digits_queue_wait_seconds_count", labels) == 5  # once per request
    assert sample("digits_queue_depth_images", labels) == 0
