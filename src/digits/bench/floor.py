"""The transport floor: an OIP v2 gRPC server that answers without a model.

``digits bench --floor`` starts it beside the digits servers and sends every oip scenario
there too (rows ``@floor``). It parses each request and returns a fixed answer of the
right shape (zeros, FP32 [N, 10]), as grpc.aio in Python does with nothing else to do:
what any Python gRPC server pays per request before its model runs, from a heap kept
warm as a server's with a model loaded is (``keep_freed_memory``). At one client a
request's model call and its exchange follow each other, so no server can beat
``ceiling``: the ratio to the in-process model that a server adding nothing to the bare
exchange would reach.

Run alone: ``python -m digits.bench.floor --port 8001`` (127.0.0.1 unless ``--host``).
"""

import argparse
import asyncio
import contextlib
import ctypes
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc

from digits.api import channel_options
from digits.bench.externals import ExternalServer, ExternalServerError, check_ready
from digits.bench.serving import HOST, free_port
from digits.oip import open_inference_pb2 as pb
from digits.oip import open_inference_pb2_grpc

NAME = "floor"
CLASSES = 10
STARTUP_TIMEOUT = 30.0  # seconds: no TensorFlow to import
STOP_TIMEOUT = 10.0
# glibc's mallopt parameters, and the values the floor fixes them at.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: every request's buffers come from the heap
TRIM_THRESHOLD = 256 << 20  # and stay there, free, for the next request


class FloorServicer(open_inference_pb2_grpc.GRPCInferenceServiceServicer):
    """Ready for every model; answers ModelInfer with zeros for as many images as sent."""

    def __init__(self) -> None:
        self._answers: dict[int, pb.ModelInferResponse] = {}

    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: grpc.aio.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: grpc.aio.ServicerContext) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=True)

    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: grpc.aio.ServicerContext) -> pb.ModelInferResponse:
        images = request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 0
        answer = self._answers.get(images)
        if answer is None:  # built once per size: the floor is the exchange, not the answer
            answer = pb.ModelInferResponse(model_name=NAME)  # no id: the answer is shared
            answer.outputs.add(name="probabilities", datatype="FP32", shape=[images, CLASSES])
            answer.raw_output_contents.append(bytes(4 * CLASSES * images))
            self._answers[images] = answer
        return answer


async def serve(host: str, port: int) -> None:
    """Serve the floor on host:port until cancelled or terminated."""
    server = grpc.aio.server(options=channel_options())
    open_inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(FloorServicer(), server)
    if not server.add_insecure_port(f"{host}:{port}"):
        raise OSError(f"cannot listen on {host}:{port}; choose a free --port")
    await server.start()
    await server.wait_for_termination()


def keep_freed_memory() -> bool:
    """Keep freed buffers in the heap for the next request; False where not glibc.

    A fresh Python process's heap gives the buffers of a large request back to the
    kernel when they are freed and faults them in again for the next one: hundreds of
    page faults per 1,024-image request, which made the bare exchange two to three times
    slower on the development VM than without them. A server that has loaded TensorFlow
    keeps a large heap and takes few (digits: 1 to 20 per request), so without this the
    floor would charge the exchange with a cost the server under test does not pay.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def ceiling(floor_images_per_second: float, in_process_images_per_second: float) -> float:
    """The highest ratio to the in-process model a server can reach at one client.

    A request's exchange takes at least what it takes the floor, its model call at least
    what it takes in-process, one after the other: images/s <= 1 / (1/floor + 1/model).
    """
    return floor_images_per_second / (floor_images_per_second + in_process_images_per_second)


@contextlib.contextmanager
def started() -> Iterator[ExternalServer]:
    """A floor server process on a free loopback port, stopped on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digits.bench.floor", "--host", HOST, "--port", str(port)])
    try:
        server = ExternalServer(NAME, f"{HOST}:{port}", process.pid)
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: ExternalServer, process: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise ExternalServerError(f"the floor server exited with {process.returncode} "
                                      "before it was ready; its output is above")
        try:
            check_ready(server, "any", timeout=1.0)
            return
        except ExternalServerError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits.bench.floor",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if not keep_freed_memory():
        print("floor: this C library has no mallopt; the bare exchange may pay page faults "
              "a server with a model loaded does not", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
