"""Servers under test: ``digits serve`` processes on a loopback port, ready when healthy.

Several processes may share one port (SO_REUSEPORT, which gRPC sets on Linux): the
kernel spreads incoming connections over them, so each process has its own GIL.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from digits.service.settings import flag

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 180.0  # seconds: TensorFlow's import and the first load are slow
STOP_TIMEOUT = 30.0
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class ServerConfig:
    """How the servers under test are started; None leaves the server's own default."""

    batching: bool = True
    processes: int = 1
    max_batch_size: int | None = None
    batch_timeout: float | None = None
    max_queue_images: int | None = None
    inference_threads: int | None = None
    concurrent_batches: int | None = None
    tls_cert: Path | None = None  # with tls_key: the servers speak TLS only
    tls_key: Path | None = None
    tls_ca: Path | None = None  # what the clients (and the readiness check) trust
    tls_server_name: str = "localhost"

    def flags(self) -> list[str]:
        """``digits serve`` flags for this configuration."""
        flags = ["--batching" if self.batching else "--no-batching"]
        for name in ("max_batch_size", "batch_timeout", "max_queue_images",
                     "inference_threads", "concurrent_batches", "tls_cert", "tls_key"):
            value = getattr(self, name)
            if value is not None:
                flags += [flag(name), str(value)]
        return flags


class ServerStartError(RuntimeError):
    """A server under test exited or did not become healthy in time."""


class ServedModel:
    """``config.processes`` servers of ``models`` on one loopback port (a context manager)."""

    def __init__(self, models: Path, model: str, config: ServerConfig) -> None:
        self.models = models
        self.model = model
        self.config = config
        self.port = 0
        self.http_port = 0
        self.metrics_ports: list[int] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs = tempfile.TemporaryDirectory(prefix="digits-bench-")

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def http_target(self) -> str:
        return f"{HOST}:{self.http_port}"

    def __enter__(self) -> "ServedModel":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the processes and wait until each has the model loaded."""
        self.port = free_port()
        self.http_port = free_port()
        self.metrics_ports = [free_port() for _ in range(self.config.processes)]
        for index, metrics_port in enumerate(self.metrics_ports):
            command = [
                sys.executable, "-m", "digits", "--log-level", "WARNING", "serve",
                "--models", str(self.models), "--default-model", self.model,
                "--host", HOST, "--port", str(self.port), "--metrics-port", str(metrics_port),
                "--http-port", str(self.http_port),
                *self.config.flags(),
            ]
            log_path = Path(self._logs.name) / f"server-{index}.log"
            with log_path.open("wb") as log_file:
                self._processes.append(subprocess.Popen(
                    command, stdout=log_file, stderr=subprocess.STDOUT,
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}))
        for index, metrics_port in enumerate(self.metrics_ports):
            self._wait_loaded(index, metrics_port)
        self._wait_healthy()

    def stop(self) -> None:
        """SIGTERM every process, wait for it to drain and exit (kill after a while)."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("server process %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        self._processes = []
        self._logs.cleanup()

    def cpu_seconds(self) -> float:
        """CPU time the server processes have used so far (all their threads)."""
        return sum(process_cpu_seconds(process.pid) for process in self._processes)

    def metric_total(self, name: str) -> float:
        """A sample summed over the processes, for this model (0 when absent)."""
        return sum(
            scrape(port).get((name, self.model), 0.0) for port in self.metrics_ports)

    def _wait_loaded(self, index: int, metrics_port: int) -> None:
        """Poll the process's /metrics until a version of the model is loaded."""
        process = self._processes[index]
        give_up_at = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < give_up_at:
            if process.poll() is not None:
                raise ServerStartError(
                    f"server exited with code {process.returncode}:\n{self._log_tail(index)}")
            try:
                if scrape(metrics_port).get(("digits_model_versions_loaded", self.model), 0):
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(POLL_INTERVAL)
        raise ServerStartError(
            f"server did not load model {self.model!r} from {self.models} within "
            f"{STARTUP_TIMEOUT:.0f} s:\n{self._log_tail(index)}")

    def channel(self) -> grpc.Channel:
        """A blocking channel to the servers, over TLS when they speak it."""
        if self.config.tls_ca is None:
            return grpc.insecure_channel(self.target)
        return grpc.secure_channel(
            self.target, grpc.ssl_channel_credentials(self.config.tls_ca.read_bytes()),
            options=[("grpc.ssl_target_name_override", self.config.tls_server_name)])

    def _wait_healthy(self) -> None:
        """Ask the gRPC health service for the model, as a client would."""
        with self.channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            give_up_at = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < give_up_at:
                try:
                    answer = stub.Check(
                        health_pb2.HealthCheckRequest(service=self.model), timeout=5)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(POLL_INTERVAL)
        raise ServerStartError(f"{self.target} never reported {self.model!r} SERVING")

    def _log_tail(self, index: int, lines: int = 30) -> str:
        path = Path(self._logs.name) / f"server-{index}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A loopback port the OS reports free (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, str], float]:
    """Samples of a /metrics page keyed by (sample name, model label)."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels:
                continue
            key = (sample.name, sample.labels.get("model", ""))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a running process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after the command name start at field 3 (state): utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
