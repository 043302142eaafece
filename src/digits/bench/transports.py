"""How the load generator's requests travel: gRPC calls or HTTP posts, one sender each.

A sender takes the index of a prepared payload, sends it and returns the status: "OK",
the gRPC code's name, "HTTP_<status>", or "WRONG_PREDICTION_COUNT" when the answer does
not hold one prediction per image. Answers are parsed only that far.
"""

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import grpc

from digits.api import CLASSIFY_METHOD, MODEL_INFER_METHOD, channel_options
from digits.bench.plan import LoadPlan
from digits.oip import open_inference_pb2
from digits.v1 import classifier_pb2

Sender = Callable[[int], Awaitable[str]]
HEADER_LENGTH = "Inference-Header-Content-Length"


@contextlib.asynccontextmanager
async def senders(plan: LoadPlan) -> AsyncIterator[list[Sender]]:
    """One sender per connection the plan asks for, closed on exit."""
    opened = _http(plan) if plan.encoding == "oip-http" else _grpc(plan)
    async with opened as made:
        yield made


@contextlib.asynccontextmanager
async def _grpc(plan: LoadPlan) -> AsyncIterator[list[Sender]]:
    options: list[tuple[str, Any]] = [
        *channel_options(),
        # A channel of its own per connection, so several server processes sharing a
        # port (SO_REUSEPORT) each get connections.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    count = max(1, min(plan.channels, plan.concurrency))
    if plan.tls_ca is None:
        channels = [grpc.aio.insecure_channel(plan.target, options=options)
                    for _ in range(count)]
    else:
        options.append(("grpc.ssl_target_name_override", plan.tls_server_name))
        credentials = grpc.ssl_channel_credentials(root_certificates=plan.tls_ca)
        channels = [grpc.aio.secure_channel(plan.target, credentials, options=options)
                    for _ in range(count)]
    method = MODEL_INFER_METHOD if plan.encoding == "oip" else CLASSIFY_METHOD

    def sender(call: grpc.aio.UnaryUnaryMultiCallable) -> Sender:
        async def send(index: int) -> str:
            try:
                answer = await call(plan.payloads[index], timeout=plan.timeout)
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)
            return _checked(_grpc_answered(plan.encoding, answer), plan)
        return send

    try:
        yield [sender(channel.unary_unary(method)) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()


@contextlib.asynccontextmanager
async def _http(plan: LoadPlan) -> AsyncIterator[list[Sender]]:
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    timeout = aiohttp.ClientTimeout(total=plan.timeout)
    secure: dict[str, Any] = {}
    if plan.tls_ca is not None:
        secure = {"ssl": ssl.create_default_context(cadata=plan.tls_ca.decode()),
                  "server_hostname": plan.tls_server_name}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        url = f"{'https' if secure else 'http'}://{plan.target}{plan.http_path}"

        async def send(index: int) -> str:
            headers = {HEADER_LENGTH: str(plan.header_lengths[index]),
                       "Content-Type": "application/octet-stream"}
            try:
                async with session.post(url, data=plan.payloads[index], headers=headers,
                                        **secure) as response:
                    body = await response.read()
                    if response.status != 200:
                        return f"HTTP_{response.status}"
                    length = int(response.headers.get(HEADER_LENGTH, len(body)))
            except TimeoutError:
                return "DEADLINE_EXCEEDED"
            except aiohttp.ClientError:
                return "UNAVAILABLE"
            shape = json.loads(body[:length])["outputs"][0]["shape"]
            return _checked(int(shape[0]), plan)

        yield [send]


def _grpc_answered(encoding: str, response: bytes) -> int:
    if encoding == "oip":
        answer = open_inference_pb2.ModelInferResponse.FromString(response)
        return int(answer.outputs[0].shape[0]) if answer.outputs else 0
    return len(classifier_pb2.ClassifyResponse.FromString(response).predictions)


def _checked(answered: int, plan: LoadPlan) -> str:
    return "OK" if answered == plan.images_per_request else "WRONG_PREDICTION_COUNT"
