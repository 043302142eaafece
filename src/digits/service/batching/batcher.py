"""Dynamic batching: concurrent predict calls for one model version coalesced into model calls.

Requests wait in a queue bounded in images. One worker task per batcher starts the
batches: it asks the flush policy how long to wait, takes the oldest requests (splitting
one that does not fit), drops those whose deadline has passed or whose caller has gone,
and runs the model on the rest in the executor (off the event loop), which hands each
caller exactly its own rows. While the model runs, the next batch gathers in the queue, so
batches grow with the load by themselves; a full one may start beside it (the policy's
``max_concurrent_batches``).
"""

import asyncio
import concurrent.futures
import logging
import time
from collections import deque

import numpy as np

from digits.service import errors
from digits.service.batching.policy import UNTIL_ARRIVAL, FlushPolicy, QueueState, Wait
from digits.service.batching.predictor import Admission, Predict, call_model
from digits.service.batching.requests import (
    QueuedRequest,
    Slice,
    batch_pixels,
    deliver,
    fail,
    latest_deadline,
)
from digits.service.metrics import BatchMetrics
from digits.service.settings import BatchingSettings

log = logging.getLogger(__name__)


class Batcher:
    """Coalesces concurrent predict calls for one model version into batched calls."""

    def __init__(self, predict: Predict, settings: BatchingSettings, metrics: BatchMetrics,
                 executor: concurrent.futures.Executor, *, name: str,
                 policy: FlushPolicy | None = None) -> None:
        self._predict = predict
        self._name = name
        self._metrics = metrics
        self._executor = executor
        self._max_batch_size = settings.max_batch_size
        self._policy = policy or FlushPolicy(
            settings.max_batch_size, settings.batch_timeout,
            max_concurrent_batches=settings.concurrent_batches)
        # Images admitted and not yet handed to the model.
        self._admission = Admission(name, settings.max_queue_images, metrics.queue_depth)
        self._queue: deque[QueuedRequest] = deque()
        self._worker: asyncio.Task[None] | None = None
        # While the worker sleeps it awaits this future, which predict() resolves once
        # the queue reaches the thresholds in self._wake (or its timer fires).
        self._wakeup: asyncio.Future[None] | None = None
        self._wake = UNTIL_ARRIVAL
        self._last_arrival = 0.0
        self._previous_batch_requests = 1
        self._running: set[asyncio.Task[None]] = set()  # batches in the model
        # Requests that arrived while the model ran the current batch, and whether any
        # arrived during the previous one: the sign that other callers are in flight.
        self._arrivals_while_running = 0
        self._callers_in_flight = False

    @property
    def queued_images(self) -> int:
        """Images admitted and not yet handed to the model."""
        return self._admission.images

    async def predict(self, pixels: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """uint8 [N, 28, 28] -> float32 [N, classes] for exactly these images.

        deadline: absolute time.monotonic() seconds, or None. Raises errors.Overloaded
        when the queue (counted in images) is full, errors.DeadlineExpired when the
        deadline passed before the batch ran (the images are then not computed).
        """
        now = time.monotonic()
        self._admission.admit(len(pixels), deadline, now)
        loop = asyncio.get_running_loop()
        request = QueuedRequest(pixels, deadline, loop.create_future(), now)
        self._queue.append(request)
        self._last_arrival = now
        if self._running:
            self._arrivals_while_running += 1
        if self._worker is None:
            self._worker = loop.create_task(self._work(), name=f"batcher-{self._name}")
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done() and (
                self._admission.images >= self._wake.wake_images
                or len(self._queue) >= self._wake.wake_requests):
            wakeup.set_result(None)
        # If this caller is cancelled (client gone), the future is cancelled with it and
        # the worker skips the request instead of computing it.
        return await request.future

    async def close(self) -> None:
        """Stop accepting work, finish what is queued, then return."""
        self._admission.closing = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        if self._worker is not None:
            await self._worker

    async def _work(self) -> None:
        """The worker: wait as the policy says, take a batch, start it; return once
        closing, empty and every batch has finished."""
        while True:
            if not self._queue and self._admission.closing:
                if self._running:
                    await asyncio.wait(self._running)
                return
            wait = self._policy.decide(self._state(), time.monotonic())
            if not wait.start_now:
                await self._sleep(wait)
                continue  # re-check: full, enough requests, paused, timed out, a batch
                # finished, or closing
            slices: list[Slice] = []
            try:
                slices = self._take_batch()
                if slices:
                    self._previous_batch_requests = len(slices)
                    self._start_batch(slices)
            except Exception as error:  # a bug here must not leave callers waiting forever
                log.exception("batching worker of model %s failed", self._name)
                fail(slices, error)

    def _start_batch(self, slices: list[Slice]) -> None:
        """Run the batch in a task of its own; the worker is woken when it ends."""
        self._arrivals_while_running = 0
        task = asyncio.get_running_loop().create_task(self._run_batch(slices))
        self._running.add(task)

        def ended(task: asyncio.Task[None]) -> None:
            self._running.discard(task)
            self._callers_in_flight = self._arrivals_while_running > 0
            if self._wakeup is not None and not self._wakeup.done():
                self._wakeup.set_result(None)

        task.add_done_callback(ended)

    def _state(self) -> QueueState:
        oldest = self._queue[0] if self._queue else None
        return QueueState(
            images=self._admission.images,
            requests=len(self._queue),
            oldest_arrival=oldest.arrived if oldest else 0.0,
            oldest_partly_run=bool(oldest and oldest.taken),
            last_arrival=self._last_arrival,
            previous_batch_requests=self._previous_batch_requests,
            callers_in_flight=self._callers_in_flight,
            closing=self._admission.closing,
            running=len(self._running),
        )

    async def _sleep(self, wait: Wait) -> None:
        """Sleep until predict() reaches the wait's thresholds, close(), or its timer."""
        loop = asyncio.get_running_loop()
        wakeup: asyncio.Future[None] = loop.create_future()
        self._wakeup, self._wake = wakeup, wait
        timer = (loop.call_later(wait.seconds, _resolve, wakeup)
                 if wait.seconds is not None else None)
        try:
            await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    def _take_batch(self) -> list[Slice]:
        """Pop up to max_batch_size images from the queue, dropping dead requests."""
        slices: list[Slice] = []
        filled = 0
        now = time.monotonic()
        while self._queue and filled < self._max_batch_size:
            request = self._queue[0]
            if request.future.done() or (
                    request.deadline is not None and request.deadline <= now):
                self._queue.popleft()
                self._admission.add(-request.waiting)
                if not request.future.done():
                    request.future.set_exception(errors.DeadlineExpired(
                        f"the deadline passed after {now - request.arrived:.3f} s in the "
                        "batching queue; the images were not computed"))
                continue
            rows = min(request.waiting, self._max_batch_size - filled)
            slices.append(Slice(request, request.taken, request.taken + rows, filled))
            request.taken += rows
            filled += rows
            self._admission.add(-rows)
            if not request.waiting:
                self._queue.popleft()
            if not request.started:
                request.started = True
                self._metrics.queue_wait.observe(now - request.arrived)
        return slices

    async def _run_batch(self, slices: list[Slice]) -> None:
        """Run the model on the slices' rows in the executor and deliver each caller's rows."""
        try:
            # A batch may wait for an executor thread (another batch or model holds it):
            # once every caller's deadline has passed there, it is not computed.
            output, _ = await asyncio.get_running_loop().run_in_executor(
                self._executor, call_model, self._predict, batch_pixels(slices),
                latest_deadline(slices), self._metrics)
            deliver(slices, output)
        except Exception as error:  # the model's, or a bug: only this batch's callers get
            fail(slices, error)  # it (and report it, INTERNAL ones logged)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
