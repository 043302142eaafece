"""``digits serve`` as a real process on OS-picked loopback ports, read from its start-up line."""

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.polling import wait_until

Value = TypeVar("Value")
START_SECONDS = 120.0
STOP_SECONDS = 60.0
STARTED = re.compile(r"serving gRPC on 127\.0\.0\.1:(\d+), HTTP on http://127\.0\.0\.1:(\d+), "
                     r"metrics on http://127\.0\.0\.1:(\d+)/metrics")


@dataclass
class ServeProcess:
    """A started ``digits serve`` process, the ports it announced, and its log."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0
    http_port: int = 0
    metrics_port: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def exited(self) -> str | None:
        """Why waiting on the process is pointless (it exited: its log), else None."""
        if self.process.poll() is None:
            return None
        return (f"the server exited with code {self.process.returncode}; its log:\n"
                f"{self.log.read_text()}")

    def wait(self, check: Callable[[], Value | None], what: str,
             seconds: float = START_SECONDS) -> Value:
        """Poll ``check`` until truthy; fail with the server's log as soon as it exits."""
        return wait_until(check, seconds=seconds, what=what, abort=self.exited)

    def serving(self) -> bool:
        """Whether the server's gRPC health service says SERVING."""
        with grpc.insecure_channel(self.target) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=5)
            except grpc.RpcError:
                return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def stop(self) -> None:
        """SIGTERM, then a kill if it has not exited in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_serve(models_root: Path, log: Path, *flags: str) -> ServeProcess:
    """Start ``digits serve`` for ``models_root`` with ``flags``, every port 0; return once
    its start-up line names the ports (the caller stops it)."""
    command = [sys.executable, "-m", "digits", "serve", "--models", str(models_root),
               "--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--metrics-port", "0",
               *flags]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    served = ServeProcess(process, log)
    try:
        ports = served.wait(lambda: STARTED.search(log.read_text()), "start-up line")
    except BaseException:
        served.process.kill()
        served.process.wait()
        raise
    served.port, served.http_port, served.metrics_port = (int(port) for port in ports.groups())
    return served


@contextlib.contextmanager
def serving_process(models_root: Path, log: Path, *flags: str) -> Iterator[ServeProcess]:
    """``digits serve`` started and SERVING; stopped on exit."""
    served = start_serve(models_root, log, *flags)
    try:
        served.wait(served.serving, "SERVING")
        yield served
    finally:
        served.stop()
