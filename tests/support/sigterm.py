"""The real ``digits serve`` process under SIGTERM with requests in flight."""

import signal
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.v1 import classifier_pb2, classifier_pb2_grpc

from support.prometheus import sample_value, scrape
from support.serve_process import start_serve

REQUESTS = 4
GRACE_SECONDS = 60


def drain_with_requests_in_flight(models_root: Path, log: Path) -> int:
    """Serve ``models_root`` (a slow model) in a process, put requests in flight, SIGTERM
    it: they must all complete and the process exit 0. Returns how many completed."""
    served = start_serve(models_root, log, "--grace-period", str(GRACE_SECONDS),
                         "--inference-threads", "1", "--batch-timeout", "0")
    process, metrics_port = served.process, served.metrics_port
    try:
        channel = grpc.insecure_channel(served.target)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="")
        served.wait(served.serving, "SERVING")
        watch = health.Watch(check, timeout=GRACE_SECONDS)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        stub = classifier_pb2_grpc.ClassifierStub(channel)
        pixels = np.zeros((1, 28, 28), np.uint8).tobytes()
        request = classifier_pb2.ClassifyRequest(packed_pixels=pixels)
        calls: list[grpc.Future] = []

        def in_flight(started: int, queued: int) -> bool:
            text = scrape(metrics_port)
            assert not any(call.done() for call in calls), (
                "a request completed before the rest were in flight: the slow model was "
                "not slow enough for this machine")
            return (sample_value(text, "digits_queue_wait_seconds_count", {"model": "mnist"})
                    == started
                    and sample_value(text, "digits_queue_depth_images", {"model": "mnist"})
                    == queued)

        # One request into the (slow) model first, then the rest into the batching queue
        # behind it: sent together, they could all land in one batch.
        calls.append(stub.Classify.future(request, timeout=GRACE_SECONDS))
        served.wait(lambda: in_flight(1, 0), "the first request in the model")
        calls.extend(stub.Classify.future(request, timeout=GRACE_SECONDS)
                     for _ in range(REQUESTS - 1))
        served.wait(lambda: in_flight(1, REQUESTS - 1), "requests queued behind it")
        process.send_signal(signal.SIGTERM)

        # NOT_SERVING at once, while the requests are still running...
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not any(call.done() for call in calls)
        # ...and every one of them completes.
        results = [call.result() for call in calls]
        assert [len(r.predictions) for r in results] == [1] * REQUESTS
        # The open Watch stream does not hold the exit until the grace period ends.
        assert process.wait(timeout=GRACE_SECONDS / 2) == 0
        channel.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "shutting down" in text and "stopped" in text
    assert "Traceback" not in text
    return len(results)
