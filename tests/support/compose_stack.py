"""The Compose stack under test: one project with its own name and host ports, the wall
time of each phase, and the checks and load the stack tests share."""

import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from digits.service.client import ClassifierClient

from support.polling import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
READY_SECONDS = 300.0
POLL_SECONDS = 0.5  # each check runs docker or HTTP: a gentler polling period


@dataclass
class PhaseClock:
    """Wall time of each phase, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 1)

    def table(self) -> str:
        width = max(map(len, self.seconds), default=0)
        lines = [f"  {name:<{width}}  {seconds:7.1f} s" for name, seconds in self.seconds.items()]
        return "\n".join(["stack phases (wall time):", *lines])


@dataclass
class Stack:
    """One Compose project of the stack, with its own name and host ports."""

    project: str
    environment: dict[str, str]
    grpc_port: int  # the proxy's: every request goes to the next replica
    http_port: int
    prometheus_port: int
    tensorboard_port: int
    clock: PhaseClock

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def compose(self, *arguments: str, timeout: float, overlays: tuple[Path, ...] = (),
                environment: dict[str, str] | None = None) -> str:
        """Run ``docker compose`` for this project (with any overlay files and variables);
        fail the test with its output if it fails."""
        command = ["docker", "compose", "--project-name", self.project,
                   "--file", str(COMPOSE_FILE)]
        for overlay in overlays:
            command += ["--file", str(overlay)]
        result = subprocess.run([*command, *arguments], cwd=ROOT,
                                env={**self.environment, **(environment or {})},
                                capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            pytest.fail(f"docker compose {' '.join(arguments)} exited {result.returncode}:\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def container(self, service: str) -> dict[str, Any]:
        """`docker inspect` of the service's container (the first, when there are several)."""
        return self.containers(service)[0]

    def containers(self, service: str) -> list[dict[str, Any]]:
        """`docker inspect` of every container of the service."""
        ids = self.compose("ps", "--all", "--quiet", service, timeout=60).split()
        output = subprocess.run(["docker", "inspect", *ids], capture_output=True,
                                text=True, timeout=60, check=True).stdout
        inspected: list[dict[str, Any]] = json.loads(output)
        return inspected

    def prometheus(self, path: str, **query: str) -> Any:
        """GET a Prometheus HTTP API path on loopback; its ``data`` field."""
        url = f"http://127.0.0.1:{self.prometheus_port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def served_requests(self) -> float:
        """The service's own count of successful Classify calls, from its /metrics (on its
        HTTP port, through the proxy: with one replica, that replica's)."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return sum(sample.value
                   for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == "digits_requests_total"
                   and sample.labels == {"protocol": "digits.v1/grpc", "method": "Classify",
                                         "code": "OK"})


def grpc_health(target: str) -> str | None:
    """The server's overall health status, or None while it cannot be reached."""
    with ClassifierClient(target, timeout=3) as client:
        try:
            return client.health()
        except grpc.RpcError:
            return None


def prometheus_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Poller(threading.Thread):
    """Classifies a few images again and again, recording each version or failure.

    Bounded in requests and seconds; paced so the training job keeps its CPU.
    """

    def __init__(self, target: str, pixels: np.ndarray, *, max_requests: int = 20_000,
                 max_seconds: float = 900.0) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.pixels = pixels
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.versions: list[int] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with ClassifierClient(self.target, timeout=10) as client:
            while (not self.stopping.is_set() and time.monotonic() < deadline
                   and len(self.versions) + len(self.failures) < self.max_requests):
                try:
                    self.versions.append(client.classify_pixels(self.pixels).version)
                except grpc.RpcError as error:
                    self.failures.append(f"{error.code().name}: {error.details()}")
                self.stopping.wait(0.05)

    def answered_after(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.versions) >= count or not self.is_alive()


def healthy_replicas(stack: Stack) -> int:
    return sum(1 for replica in stack.containers("service")
               if replica["State"].get("Health", {}).get("Status") == "healthy")


def classified_per_replica(stack: Stack) -> dict[str, float]:
    """Prometheus's latest count of successful Classify calls, per replica (instance)."""
    result = stack.prometheus("/api/v1/query", query=(
        'sum by (instance) (digits_requests_total{job="digits", method="Classify", '
        'code="OK"})'))["result"]
    return {sample["metric"]["instance"]: float(sample["value"][1]) for sample in result}


def scale(stack: Stack, replicas: int) -> None:
    """Run ``replicas`` replicas of the service (the others keep running) until healthy."""
    stack.compose("up", "--detach", "--no-build", "--no-recreate", "--no-deps", "--scale",
                  f"service={replicas}", "service", timeout=600)
    wait_until(lambda: len(stack.containers("service")) == replicas
               and healthy_replicas(stack) == replicas, seconds=READY_SECONDS,
               period=POLL_SECONDS, what=f"{replicas} healthy replicas")
