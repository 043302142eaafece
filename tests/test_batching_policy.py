"""The flush policy as a table: queue state and clock in, the wait out. No event loop, no sleep."""

from dataclasses import replace

import pytest

from digits.service.batching.policy import NEVER, FlushPolicy, QueueState, Wait

POLICY = FlushPolicy(max_batch_size=64, batch_timeout=0.020, idle_gap=0.001,
                     max_concurrent_batches=2)
NOW = 100.0
# Three requests queued, the oldest 5 ms ago, the newest 0.5 ms ago; the previous batch
# held four requests and others arrived while it ran.
BUSY = QueueState(images=3, requests=3, oldest_arrival=NOW - 0.005, oldest_partly_run=False,
                  last_arrival=NOW - 0.0005, previous_batch_requests=4,
                  callers_in_flight=True, closing=False)
# The callers just answered are coming back one by one: nobody else is in flight.
QUIET = replace(BUSY, callers_in_flight=False)

CASES = [
    ("empty queue: sleep until the next arrival",
     replace(BUSY, images=0, requests=0), Wait(None, wake_images=1, wake_requests=1)),
    ("full batch: start now", replace(BUSY, images=64), Wait(0.0)),
    ("more than a batch: start now", replace(BUSY, images=500, requests=2), Wait(0.0)),
    ("closing: start now, never wait", replace(BUSY, closing=True), Wait(0.0)),
    ("tail of a split request: start now", replace(BUSY, oldest_partly_run=True), Wait(0.0)),
    ("callers in flight: wait for the idle gap after the last arrival",
     BUSY, Wait(0.0005, wake_images=64, wake_requests=NEVER)),
    ("callers in flight, arrivals paused past the idle gap: start now",
     replace(BUSY, last_arrival=NOW - 0.002), Wait(0.0)),
    ("callers in flight, oldest waited out the batch timeout: start now",
     replace(BUSY, oldest_arrival=NOW - 0.020), Wait(0.0)),
    ("callers in flight, the timeout comes before the idle gap",
     replace(BUSY, oldest_arrival=NOW - 0.0198),
     Wait(0.0002, wake_images=64, wake_requests=NEVER)),
    ("nobody in flight, as many requests as last batch: start now",
     replace(QUIET, requests=4, images=4), Wait(0.0)),
    ("nobody in flight, a lone client (previous batch of one): start now",
     replace(QUIET, requests=1, images=1, previous_batch_requests=1), Wait(0.0)),
    ("nobody in flight, fewer than last batch: wait for the rest, woken when they are in",
     QUIET, Wait(0.0005, wake_images=64, wake_requests=4)),
    ("a batch runs, a partial one waits: until full or that batch ends",
     replace(BUSY, running=1), Wait(None, wake_images=64)),
    ("a batch runs, nobody in flight: still until full or that batch ends",
     replace(QUIET, running=1, requests=4, images=4), Wait(None, wake_images=64)),
    ("a batch runs, a full one waits: start beside it",
     replace(BUSY, running=1, images=64), Wait(0.0)),
    ("a batch runs, the tail of a split request waits: start beside it",
     replace(BUSY, running=1, oldest_partly_run=True), Wait(0.0)),
    ("a batch runs, closing: start beside it", replace(BUSY, running=1, closing=True),
     Wait(0.0)),
    ("every batch slot taken: until a batch ends, even when full",
     replace(BUSY, running=2, images=500), Wait(None)),
    ("every batch slot taken, empty queue: until the next arrival",
     replace(BUSY, running=2, images=0, requests=0),
     Wait(None, wake_images=1, wake_requests=1)),
]


@pytest.mark.parametrize(("case", "state", "expected"), CASES, ids=[c[0] for c in CASES])
def test_flush_policy(case: str, state: QueueState, expected: Wait) -> None:
    wait = POLICY.decide(state, NOW)
    if expected.seconds is None:
        assert wait.seconds is None
    else:
        assert wait.seconds == pytest.approx(expected.seconds, abs=1e-9)
    assert (wait.wake_images, wait.wake_requests) == (expected.wake_images,
                                                      expected.wake_requests)
    assert wait.start_now == (expected.seconds == 0)


def test_one_batch_at_a_time_when_the_concurrency_is_one() -> None:
    sequential = replace(POLICY, max_concurrent_batches=1)
    assert sequential.decide(replace(BUSY, running=1, images=500), NOW) == Wait(None)


def test_zero_batch_timeout_never_waits() -> None:
    never = FlushPolicy(max_batch_size=64, batch_timeout=0.0, idle_gap=0.001)
    assert never.decide(BUSY, NOW).start_now
    assert never.decide(QUIET, NOW).start_now


def test_the_wait_shrinks_as_the_clock_runs_and_ends_at_the_deadline() -> None:
    waits = [POLICY.decide(replace(BUSY, last_arrival=NOW), NOW + elapsed).seconds
             for elapsed in (0.0, 0.0004, 0.0008, 0.001, 0.5)]
    assert waits == pytest.approx([0.001, 0.0006, 0.0002, 0.0, 0.0], abs=1e-9)
