"""When the next batch starts: a pure function of the queue's state and the clock.

When the model is free, the next batch starts at once if the queue holds
``max_batch_size`` images, or if no request arrived while the previous batch ran and the
queue holds as many requests as that batch did: then the callers just answered are all
back and nobody else is on the way, so waiting would only hold them (a lone client never
waits). Otherwise other callers are in flight, and the batch waits for them until no
request has arrived for ``idle_gap`` seconds or the oldest has waited ``batch_timeout``
seconds (0: never wait). Waiting then costs the server nothing, as the event loop is busy
with the requests on their way, and fewer, larger model calls leave it more time.

While batches run, another starts beside them (up to ``max_concurrent_batches``) only
when a full batch waits or the tail of a split request does: large requests then keep
the model's threads busy across the hand-offs between batches, while small requests go
on gathering into the next batch as before.
"""

from dataclasses import dataclass

# Under full load a request reaches the batcher every few hundred microseconds (the gRPC
# and servicer work per request on one event loop), so a millisecond without one means
# the arrivals have paused rather than that the next one is on its way.
IDLE_GAP = 0.001
NEVER = 1 << 62  # a wake-up threshold no queue reaches


@dataclass(frozen=True)
class QueueState:
    """What the policy looks at: the waiting requests and the previous batch."""

    images: int  # images waiting (not yet in a batch)
    requests: int  # requests with images waiting
    oldest_arrival: float  # time.monotonic() of the oldest waiting request
    oldest_partly_run: bool  # the oldest is the tail of a request already partly run
    last_arrival: float  # time.monotonic() of the newest arrival
    previous_batch_requests: int  # requests in the previous batch (1 before any)
    callers_in_flight: bool  # requests arrived while the previous batch ran
    closing: bool  # the batcher is draining: no point waiting
    running: int = 0  # batches in the model right now


@dataclass(frozen=True)
class Wait:
    """Start now (``seconds`` 0), or sleep at most ``seconds`` (None: until woken) unless
    the queue reaches ``wake_images`` images or ``wake_requests`` requests first."""

    seconds: float | None
    wake_images: int = NEVER
    wake_requests: int = NEVER

    @property
    def start_now(self) -> bool:
        return self.seconds == 0


START_NOW = Wait(0.0)
UNTIL_ARRIVAL = Wait(None, wake_images=1, wake_requests=1)
# Every batch slot taken: wait for one to finish (a finishing batch always wakes the
# worker).
UNTIL_A_BATCH_ENDS = Wait(None)


@dataclass(frozen=True)
class FlushPolicy:
    """Decides how long the next batch waits for more requests."""

    max_batch_size: int
    batch_timeout: float
    idle_gap: float = IDLE_GAP
    max_concurrent_batches: int = 1

    def decide(self, state: QueueState, now: float) -> Wait:
        """The wait before the next batch, given the queue at ``now`` (monotonic seconds)."""
        if not state.requests:
            return UNTIL_ARRIVAL
        if state.running >= self.max_concurrent_batches:
            return UNTIL_A_BATCH_ENDS
        if state.running:
            if state.closing or state.oldest_partly_run or (
                    state.images >= self.max_batch_size):
                return START_NOW
            return Wait(None, wake_images=self.max_batch_size)
        # The tail of a request already partly run never waits: it only adds latency.
        if state.closing or state.oldest_partly_run or state.images >= self.max_batch_size:
            return START_NOW
        if not state.callers_in_flight and state.requests >= state.previous_batch_requests:
            return START_NOW
        flush_at = min(state.oldest_arrival + self.batch_timeout,
                       state.last_arrival + self.idle_gap)
        if flush_at <= now:
            return START_NOW
        # With callers in flight only a full batch or the timer ends the wait: a wake-up
        # on every arrival would only cost event loop time.
        return Wait(flush_at - now, wake_images=self.max_batch_size,
                    wake_requests=NEVER if state.callers_in_flight
                    else state.previous_batch_requests)
