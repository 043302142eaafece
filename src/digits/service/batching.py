"""Dynamic batching: concurrent predict calls for one model version coalesced into model calls.

Requests wait in a queue bounded in images. One worker task per batcher runs one batch at
a time: it takes the oldest requests (splitting one that does not fit), drops those whose
deadline has passed or whose caller has gone, runs the model on the rest in the executor
(off the event loop) and hands each caller exactly its own rows. While the model runs,
the next batch gathers in the queue, so batches grow with the load by themselves.

When the model is free, the worker starts the next batch at once if the queue holds
``max_batch_size`` images, or if no request arrived while the previous batch ran and the
queue holds as many requests as that batch did: then the callers just answered are all
back and nobody else is on the way, so waiting would only hold them (a lone client never
waits). Otherwise other callers are in flight, and the batch waits for them until no
request has arrived for ``idle_gap`` seconds or the oldest has waited ``batch_timeout``
seconds (0: never wait). Waiting then costs the server nothing, as the event loop is busy
with the requests on their way, and fewer, larger model calls leave it more time.
"""

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digits.modelstore.signature import IMAGE_SIZE
from digits.service import errors
from digits.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]

# Under full load a request reaches the batcher every few hundred microseconds (the gRPC
# and servicer work per request on one event loop), so a millisecond without one means
# the arrivals have paused rather than that the next one is on its way.
IDLE_GAP = 0.001
_NEVER = 1 << 62  # a wake-up threshold no queue reaches


@dataclass(eq=False)
class _Request:
    """One caller's images, the future it awaits, and how far its rows have got."""

    pixels: np.ndarray
    deadline: float | None
    future: asyncio.Future[np.ndarray]
    enqueued: float
    taken: int = 0  # rows already put into a batch (a large request spans several)
    done_rows: int = 0  # rows whose results have arrived
    output: np.ndarray | None = None
    started: bool = False  # queue wait is observed once, when its first rows run

    @property
    def size(self) -> int:
        return len(self.pixels)

    @property
    def waiting(self) -> int:
        return self.size - self.taken


@dataclass
class _Slice:
    """Rows ``start:stop`` of one request, placed at ``offset`` in a batch."""

    request: _Request
    start: int
    stop: int
    offset: int


class Batcher:
    """Coalesces concurrent predict calls for one model version into batched calls."""

    def __init__(
        self,
        predict: Predict,
        *,
        model: str,
        metrics: ServiceMetrics,
        executor: concurrent.futures.Executor,
        max_batch_size: int,
        batch_timeout: float,
        max_queue_images: int,
        enabled: bool = True,
        idle_gap: float = IDLE_GAP,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if batch_timeout < 0:
            raise ValueError(f"batch_timeout must be 0 or more seconds, got {batch_timeout}")
        if max_queue_images < 1:
            raise ValueError(f"max_queue_images must be at least 1, got {max_queue_images}")
        self._predict = predict
        self._model = model
        self._executor = executor
        self._max_batch_size = max_batch_size
        self._batch_timeout = batch_timeout
        self._idle_gap = idle_gap
        self._max_queue_images = max_queue_images
        self._enabled = enabled
        # Children bound once: labels() on every request would cost a dict lookup and lock.
        self._batch_size = metrics.batch_size.labels(model=model)
        self._queue_depth = metrics.queue_depth.labels(model=model)
        self._queue_wait = metrics.queue_wait.labels(model=model)
        self._inference_duration = metrics.inference_duration.labels(model=model)

        self._queue: deque[_Request] = deque()
        # Images admitted and not yet running (batching on) or not yet finished (off).
        self._queued_images = 0
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None  # close() waits on it
        # The worker, when it sleeps, waits on this future until the queue holds at
        # least _wake_images images or _wake_requests requests (or its timer fires);
        # predict() resolves it.
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_images = 1
        self._wake_requests = 1
        self._last_arrival = 0.0
        self._previous_batch_requests = 1
        # Requests that arrived while the model ran the current batch, and whether any
        # arrived during the previous one: the sign that other callers are in flight.
        self._model_running = False
        self._arrivals_while_running = 0
        self._callers_in_flight = False

    @property
    def queued_images(self) -> int:
        """Images admitted and not yet handed to the model."""
        return self._queued_images

    async def predict(self, pixels: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """uint8 [N,28,28] -> float32 [N,C] for exactly these images.

        deadline: absolute time.monotonic() seconds, or None. Raises errors.Overloaded
        when the queue (counted in images) is full, errors.DeadlineExpired when the
        deadline passed before the batch ran (the images are then not computed).
        """
        if self._closing:
            raise errors.ModelUnavailable(
                f"model {self._model!r}: this version is shutting down; retry the request"
            )
        _check_pixels(pixels)
        count = len(pixels)
        if count > self._max_queue_images:
            raise errors.InvalidInput(
                f"images: {count} images exceed the server's batching queue of "
                f"{self._max_queue_images}; send at most {self._max_queue_images} per request"
            )
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            raise errors.DeadlineExpired("the deadline passed before the request was queued")
        if self._queued_images + count > self._max_queue_images:
            raise errors.Overloaded(
                f"model {self._model!r}: the batching queue is full "
                f"({self._queued_images} of {self._max_queue_images} images waiting); "
                "retry with backoff"
            )
        self._add_queued(count)
        if not self._enabled:
            return await self._predict_alone(pixels, deadline, now)
        loop = asyncio.get_running_loop()
        request = _Request(pixels, deadline, loop.create_future(), now)
        self._queue.append(request)
        self._last_arrival = now
        if self._model_running:
            self._arrivals_while_running += 1
        if self._worker is None:
            self._worker = loop.create_task(self._work(), name=f"batcher-{self._model}")
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done() and (
            self._queued_images >= self._wake_images
            or len(self._queue) >= self._wake_requests
        ):
            wakeup.set_result(None)
        # If this caller is cancelled (client gone), the future is cancelled with it and
        # the worker skips the request instead of computing it.
        return await request.future

    async def close(self) -> None:
        """Stop accepting work, finish what is queued, then return."""
        self._closing = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        if self._worker is not None:
            await self._worker
        if self._queued_images > 0:  # batching off: calls still in the executor
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    # -- batching off ---------------------------------------------------------------

    async def _predict_alone(
        self, pixels: np.ndarray, deadline: float | None, enqueued: float
    ) -> np.ndarray:
        """Run one request by itself (split at max_batch_size), still via the executor."""
        loop = asyncio.get_running_loop()
        try:
            parts = []
            for start in range(0, len(pixels), self._max_batch_size):
                chunk = pixels[start : start + self._max_batch_size]
                output, began = await loop.run_in_executor(
                    self._executor, self._call_model, chunk, deadline
                )
                if start == 0:
                    self._queue_wait.observe(max(0.0, began - enqueued))
                parts.append(output)
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        finally:
            self._add_queued(-len(pixels))

    # -- batching on ----------------------------------------------------------------

    async def _work(self) -> None:
        """The worker: gather a batch, run it, repeat; return once closing and empty."""
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._sleep(images=1, requests=1, timeout=None)
                continue
            wait = self._time_to_wait()
            if wait > 0:
                # With callers in flight, only a full batch or the timer ends the wait; a
                # wake-up on every arrival would only cost event loop time.
                enough_requests = (_NEVER if self._callers_in_flight
                                   else self._previous_batch_requests)
                await self._sleep(images=self._max_batch_size, requests=enough_requests,
                                  timeout=wait)
                continue  # re-check: full, enough requests, paused, timed out or closing
            slices = []
            try:
                slices = self._take_batch()
                if slices:
                    self._previous_batch_requests = len(slices)
                    await self._run_batch(slices)
            except Exception as error:  # a bug here must not leave callers waiting forever
                log.exception("batching worker of model %s failed", self._model)
                _fail(slices, error)

    def _time_to_wait(self) -> float:
        """Seconds the next batch should still wait for more requests (0: start it now)."""
        oldest = self._queue[0]
        # The tail of a request already partly run never waits: it only adds latency.
        if self._closing or oldest.taken or self._queued_images >= self._max_batch_size:
            return 0.0
        if not self._callers_in_flight and len(self._queue) >= self._previous_batch_requests:
            return 0.0
        flush_at = min(oldest.enqueued + self._batch_timeout,
                       self._last_arrival + self._idle_gap)
        return max(0.0, flush_at - time.monotonic())

    async def _sleep(self, images: int, requests: int, timeout: float | None) -> None:
        """Wait until predict() has queued ``images`` images or ``requests`` requests,
        close(), or ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        wakeup: asyncio.Future[None] = loop.create_future()
        self._wakeup, self._wake_images, self._wake_requests = wakeup, images, requests
        timer = loop.call_later(timeout, _resolve, wakeup) if timeout is not None else None
        try:
            await wakeup
        finally:
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    def _take_batch(self) -> list[_Slice]:
        """Pop up to max_batch_size images from the queue, dropping dead requests."""
        slices: list[_Slice] = []
        filled = 0
        now = time.monotonic()
        while self._queue and filled < self._max_batch_size:
            request = self._queue[0]
            if request.future.done():  # caller cancelled, or an earlier part failed
                self._queue.popleft()
                self._add_queued(-request.waiting)
                continue
            if request.deadline is not None and request.deadline <= now:
                self._queue.popleft()
                self._add_queued(-request.waiting)
                request.future.set_exception(errors.DeadlineExpired(
                    f"the deadline passed after {now - request.enqueued:.3f} s in the "
                    "batching queue; the images were not computed"
                ))
                continue
            rows = min(request.waiting, self._max_batch_size - filled)
            slices.append(_Slice(request, request.taken, request.taken + rows, filled))
            request.taken += rows
            filled += rows
            self._add_queued(-rows)
            if not request.waiting:
                self._queue.popleft()
            if not request.started:
                request.started = True
                self._queue_wait.observe(now - request.enqueued)
        return slices

    async def _run_batch(self, slices: list[_Slice]) -> None:
        """Run the model on the slices' rows in the executor and deliver each caller's rows."""
        if len(slices) == 1 and slices[0].start == 0 and slices[0].stop == slices[0].request.size:
            pixels = slices[0].request.pixels  # the common large request: no copy
        else:
            pixels = np.concatenate([s.request.pixels[s.start : s.stop] for s in slices])
        loop = asyncio.get_running_loop()
        self._model_running, self._arrivals_while_running = True, 0
        try:
            output, _ = await loop.run_in_executor(self._executor, self._call_model, pixels, None)
        except Exception as error:
            _fail(slices, error)
            return
        finally:
            self._model_running = False
            self._callers_in_flight = self._arrivals_while_running > 0
        for piece in slices:
            _deliver(piece, output[piece.offset : piece.offset + piece.stop - piece.start])

    def _call_model(
        self, pixels: np.ndarray, deadline: float | None
    ) -> tuple[np.ndarray, float]:
        """In the executor: check the deadline, run and time the model, check its output."""
        began = time.monotonic()
        if deadline is not None and deadline <= began:
            raise errors.DeadlineExpired(
                "the deadline passed while waiting for the model; the images were not computed"
            )
        output = self._predict(pixels)
        self._inference_duration.observe(time.monotonic() - began)
        self._batch_size.observe(len(pixels))
        if output.ndim != 2 or len(output) != len(pixels):
            raise RuntimeError(
                f"model {self._model!r} returned shape {output.shape} for {len(pixels)} images"
            )
        return output, began

    def _add_queued(self, images: int) -> None:
        self._queued_images += images
        self._queue_depth.set(self._queued_images)
        if self._queued_images == 0 and self._drained is not None:
            _resolve(self._drained)


def _check_pixels(pixels: np.ndarray) -> None:
    """Reject what the batch concatenation or the model could not take."""
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 3
        or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE)
    ):
        shape = getattr(pixels, "shape", None)
        dtype = getattr(pixels, "dtype", type(pixels).__name__)
        raise errors.InvalidInput(
            f"pixels: expected uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}], got {dtype} {shape}; "
            "send 28x28 8-bit images"
        )
    if len(pixels) == 0:
        raise errors.InvalidInput("images: the batch is empty; send at least one image")


def _deliver(piece: _Slice, rows: np.ndarray) -> None:
    """Give a slice's rows to its request; resolve the request once all its rows are in."""
    request = piece.request
    if request.future.done():
        return
    if piece.start == 0 and piece.stop == request.size:
        request.future.set_result(rows)
        return
    if request.output is None:
        request.output = np.empty((request.size, rows.shape[1]), dtype=rows.dtype)
    request.output[piece.start : piece.stop] = rows
    request.done_rows += len(rows)
    if request.done_rows == request.size:
        request.future.set_result(request.output)


def _fail(slices: list[_Slice], error: BaseException) -> None:
    """Give the batch's error to each of its callers, and only to them."""
    for piece in slices:
        if not piece.request.future.done():
            piece.request.future.set_exception(error)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
