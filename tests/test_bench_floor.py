"""The transport floor: a real process answering OIP v2 over gRPC without a model, and the
one-client ceiling it implies."""

import socket
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.bench import floor
from digits.bench.externals import check_ready
from digits.oip import open_inference_pb2 as pb
from digits.oip import open_inference_pb2_grpc


def _request(images: int) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="mnist")
    request.inputs.add(name="images", datatype="UINT8", shape=[images, 28, 28])
    request.raw_input_contents.append(bytes(784 * images))
    return request


def test_floor_process_answers_each_request_with_one_row_per_image_then_stops() -> None:
    with floor.started() as server:
        assert server.name == "floor" and server.pid is not None
        check_ready(server, "any-model")  # ready for whatever model it is asked for
        with grpc.insecure_channel(server.target) as channel:
            stub = open_inference_pb2_grpc.GRPCInferenceServiceStub(channel)
            for images in (3, 1024, 3, 1):  # answers are cached per size: sizes interleave
                answer = stub.ModelInfer(_request(images), timeout=10)
                assert list(answer.outputs[0].shape) == [images, floor.CLASSES]
                values = np.frombuffer(answer.raw_output_contents[0], dtype="<f4")
                assert values.size == images * floor.CLASSES and not values.any()
        host, port = server.target.rsplit(":", 1)
    # Stopped on exit: nothing listens on its port any more.
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect((host, int(port)))


def _minor_page_faults(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[7])  # minflt, after the command name


def test_floor_serves_large_requests_from_a_warm_heap() -> None:
    # Without fixed allocator thresholds a fresh process faults about 600 pages in per
    # 1,024-image request here (glibc returns the freed buffers to the kernel every
    # time), 30 to 50 with them, and the floor would measure that rather than the exchange.
    requests = 20
    with floor.started() as server, grpc.insecure_channel(server.target) as channel:
        assert server.pid is not None
        infer = open_inference_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
        request = _request(1024)
        for _ in range(5):
            infer(request, timeout=10)
        before = _minor_page_faults(server.pid)
        for _ in range(requests):
            infer(request, timeout=10)
        per_request = (_minor_page_faults(server.pid) - before) / requests
    assert per_request < 200, f"{per_request:.0f} page faults per 1,024-image request"


def test_ceiling_is_the_ratio_of_model_and_exchange_one_after_the_other() -> None:
    # 1,000 images/s of bare exchange and 1,000 of model: half the model's own speed.
    assert floor.ceiling(1000.0, 1000.0) == pytest.approx(0.5)
    # A request of 1,024 images: 2.5 ms of exchange (409,600 images/s) beside 5 ms of
    # model (204,800 images/s): 5 ms of every 7.5 ms in the model.
    assert floor.ceiling(409_600.0, 204_800.0) == pytest.approx(2 / 3)
    # The faster the exchange, the closer to the model's own speed, never above it.
    assert floor.ceiling(1e9, 1000.0) == pytest.approx(1.0, abs=1e-5)
    assert floor.ceiling(1e9, 1000.0) < 1.0
