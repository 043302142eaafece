"""The real ``digits serve`` process under SIGTERM with requests in flight."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.v1 import classifier_pb2, classifier_pb2_grpc

from support.polling import wait_until
from support.prometheus import sample_value, scrape

REQUESTS = 4
START_SECONDS = 120.0
GRACE_SECONDS = 60


def _wait(condition: Any, what: str, timeout: float, process: subprocess.Popen[bytes],
          log: Path) -> Any:
    """Poll ``condition`` until it returns a truthy value; fail with the server's log
    as soon as the server exits."""
    def exited() -> str | None:
        if process.poll() is None:
            return None
        return f"the server exited with code {process.returncode}; its log:\n{log.read_text()}"

    return wait_until(condition, seconds=timeout, what=what, abort=exited)


def drain_with_requests_in_flight(models_root: Path, log: Path) -> int:
    """Serve ``models_root`` (a slow model) in a process, put requests in flight, SIGTERM
    it: they must all complete and the process exit 0. Returns how many completed."""
    command = [sys.executable, "-m", "digits", "serve", "--models", str(models_root),
               "--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--metrics-port", "0",
               "--grace-period", str(GRACE_SECONDS), "--inference-threads", "1",
               "--batch-timeout", "0"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        pattern = re.compile(r"serving gRPC on 127\.0\.0\.1:(\d+), HTTP on "
                             r"http://127\.0\.0\.1:(\d+), metrics on "
                             r"http://127\.0\.0\.1:(\d+)/metrics")
        ports = _wait(lambda: pattern.search(log.read_text()), "start-up line",
                      START_SECONDS, process, log)
        port, metrics_port = int(ports.group(1)), int(ports.group(3))
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="")

        def serving() -> bool:
            try:
                status = health.Check(check, timeout=5).status
            except grpc.RpcError:
                return False
            return bool(status == health_pb2.HealthCheckResponse.SERVING)

        _wait(serving, "SERVING", START_SECONDS, process, log)
        watch = health.Watch(check, timeout=GRACE_SECONDS)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        stub = classifier_pb2_grpc.ClassifierStub(channel)
        pixels = np.zeros((1, 28, 28), np.uint8).tobytes()
        calls = [stub.Classify.future(classifier_pb2.ClassifyRequest(packed_pixels=pixels),
                                      timeout=GRACE_SECONDS) for _ in range(REQUESTS)]

        def all_arrived() -> bool:
            # One request is in the (slow) model, the rest wait in the batching queue.
            text = scrape(metrics_port)
            started = sample_value(text, "digits_queue_wait_seconds_count", {"model": "mnist"})
            queued = sample_value(text, "digits_queue_depth_images", {"model": "mnist"})
            return started == 1 and queued == REQUESTS - 1

        _wait(all_arrived, "requests in flight", START_SECONDS, process, log)
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
