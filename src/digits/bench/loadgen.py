"""The load generator: concurrent gRPC clients in a process of their own, for a set window.

It imports neither TensorFlow nor the server, so a client process stays small and does not
share a GIL with the server it measures. Requests are serialised in advance; responses
are parsed (in C) only to check that every image got its prediction.
"""

import asyncio
import resource
import time
from dataclasses import dataclass, field

import grpc

from digits.api import CLASSIFY_METHOD, MODEL_INFER_METHOD, channel_options
from digits.bench.scenarios import Encoding
from digits.oip import open_inference_pb2
from digits.v1 import classifier_pb2


@dataclass
class LoadPlan:
    """What one client process does; times are time.monotonic(), which Linux shares
    between processes, so several client processes measure the same window."""

    target: str
    encoding: Encoding  # which protocol the payloads speak
    payloads: list[bytes]
    images_per_request: int
    concurrency: int
    start_at: float  # requests completing before this are warm-up
    stop_at: float  # no request is started after this
    timeout: float  # deadline of every request, seconds
    channels: int = 1  # separate connections (each reaches one server process)


@dataclass
class LoadResult:
    """What one or more client processes saw inside the measured window."""

    window: float
    requests: int = 0
    images: int = 0
    latencies: list[float] = field(default_factory=list)
    # Failed requests over the whole run (warm-up included), by status code name.
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # client CPU time over the whole run

    def merge(self, other: "LoadResult") -> "LoadResult":
        """Combine the results of client processes that measured the same window."""
        errors = dict(self.errors)
        for code, count in other.errors.items():
            errors[code] = errors.get(code, 0) + count
        return LoadResult(
            window=max(self.window, other.window),
            requests=self.requests + other.requests,
            images=self.images + other.images,
            latencies=self.latencies + other.latencies,
            errors=errors,
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
        )


def method_of(encoding: Encoding) -> str:
    """The gRPC method a scenario's requests go to."""
    return MODEL_INFER_METHOD if encoding == "oip" else CLASSIFY_METHOD


def answered_images(encoding: Encoding, response: bytes) -> int:
    """How many images a response answers (parsed in C: the client's CPU is the load's)."""
    if encoding == "oip":
        answer = open_inference_pb2.ModelInferResponse.FromString(response)
        return int(answer.outputs[0].shape[0]) if answer.outputs else 0
    return len(classifier_pb2.ClassifyResponse.FromString(response).predictions)


def drive(plan: LoadPlan) -> LoadResult:
    """Run the plan to completion (entry point of a client process)."""
    cpu_before = _cpu_seconds()
    result = asyncio.run(run_plan(plan))
    result.cpu_seconds = _cpu_seconds() - cpu_before
    return result


async def run_plan(plan: LoadPlan) -> LoadResult:
    """Run the plan's clients in the running event loop; CPU time is left at 0."""
    result = LoadResult(window=plan.stop_at - plan.start_at)
    options = [
        *channel_options(),
        # A channel of its own per connection, so several server processes sharing a
        # port (SO_REUSEPORT) each get connections.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    channels = [grpc.aio.insecure_channel(plan.target, options=options)
                for _ in range(max(1, min(plan.channels, plan.concurrency)))]
    try:
        method = method_of(plan.encoding)
        calls = [channel.unary_unary(method) for channel in channels]
        await asyncio.gather(*(
            _client(plan, calls[index % len(calls)], index, result)
            for index in range(plan.concurrency)))
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    return result


async def _client(
    plan: LoadPlan, call: grpc.aio.UnaryUnaryMultiCallable, index: int, result: LoadResult
) -> None:
    """One client: send, wait for the answer, send again, until stop_at."""
    payloads = plan.payloads
    sent = index
    while time.monotonic() < plan.stop_at:
        payload = payloads[sent % len(payloads)]
        sent += 1
        began = time.monotonic()
        code = "OK"
        try:
            answer = await call(payload, timeout=plan.timeout)
            if answered_images(plan.encoding, answer) != plan.images_per_request:
                code = "WRONG_PREDICTION_COUNT"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        ended = time.monotonic()
        if code != "OK":
            result.errors[code] = result.errors.get(code, 0) + 1
        elif plan.start_at <= ended <= plan.stop_at:
            result.requests += 1
            result.images += plan.images_per_request
            result.latencies.append(ended - began)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
