"""The Swarm stack for real, on a single-node swarm: three replicas behind the proxy, a
rolling update under load that fails no request, and a broken image that Swarm rolls
back by itself while serving goes on.

Needs a Docker engine that can form a swarm (required under CI, skipped elsewhere, as
the Compose stack test). The load runs in a container on the stack's own network.
"""

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.docker import docker, docker_problem, unavailable
from support.figures import to_terminal
from support.polling import wait_until

ROOT = Path(__file__).resolve().parent.parent
STACK_FILE = ROOT / "deploy" / "swarm" / "digits-stack.yml"
POLLER = ROOT / "tests" / "support" / "stack_poller.py"
SERVICE_IMAGE = "digits-service"
BASE_TAG = "0.1.0"
REPLICAS = 3
ROLLOUT_SECONDS = 420.0
POLL_SECONDS = 1.0

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]


@dataclass
class Swarm:
    """One deployed stack on this engine's single-node swarm."""

    stack: str

    def deploy(self, tag: str) -> None:
        """Deploy (or update) the stack with the service image ``SERVICE_IMAGE:tag``."""
        environment = {**os.environ, "DIGITS_IMAGE_TAG": tag,
                       "DIGITS_REPLICAS": str(REPLICAS)}
        docker("stack", "deploy", "--resolve-image", "never", "--compose-file",
               str(STACK_FILE), self.stack, env=environment, timeout=300)

    def update_state(self) -> str:
        """The service's update status ('' before any update)."""
        output = docker("service", "inspect", f"{self.stack}_service", "--format",
                        "{{json .UpdateStatus}}")
        status = json.loads(output) or {}
        return str(status.get("State", ""))

    def healthy_tasks(self, tag: str) -> int:
        """Running containers of the service on ``tag`` whose health check passes."""
        output = docker("ps", "--filter",
                        f"label=com.docker.swarm.service.name={self.stack}_service",
                        "--format", "{{.Image}}\t{{.Status}}")
        return sum(1 for line in output.splitlines()
                   if line.split("\t")[0] == f"{SERVICE_IMAGE}:{tag}"
                   and "(healthy)" in line)

    def wait_all_on(self, tag: str, what: str) -> None:
        wait_until(lambda: self.healthy_tasks(tag) == REPLICAS
                   and self.healthy_tasks_total() == REPLICAS,
                   seconds=ROLLOUT_SECONDS, period=POLL_SECONDS, what=what)

    def healthy_tasks_total(self) -> int:
        output = docker("ps", "--filter",
                        f"label=com.docker.swarm.service.name={self.stack}_service",
                        "--format", "{{.Status}}")
        return output.count("(healthy)")



class Load:
    """The stack poller in a container on the stack's network, through the proxy."""

    def __init__(self, swarm: Swarm) -> None:
        self.name = f"{swarm.stack}-load-{uuid.uuid4().hex[:6]}"
        docker("run", "--detach", "--name", self.name, "--network", f"{swarm.stack}_default",
               "--volume", f"{POLLER}:/poller.py:ro", "--entrypoint", "python",
               f"{SERVICE_IMAGE}:{BASE_TAG}", "/poller.py", "proxy:50051")

    def answered(self) -> int:
        lines = [line for line in docker("logs", self.name).splitlines()
                 if line.startswith("answered ")]
        return int(lines[-1].split()[1]) if lines else 0

    def wait_answers(self, count: int) -> None:
        wait_until(lambda: self.answered() >= count, seconds=120, period=POLL_SECONDS,
                   what=f"{count} answers through the proxy")

    def stop(self) -> "LoadSummary":
        """Stop it (SIGTERM); what it saw."""
        docker("stop", "--time", "30", self.name, timeout=120)
        summary = json.loads(docker("logs", self.name).strip().splitlines()[-1])
        docker("rm", self.name, check=False)
        return LoadSummary(summary["answers"], summary["failures"])


@dataclass
class LoadSummary:
    answers: int
    failures: list[str]


def build_broken(tag: str) -> None:
    """An image of the service that exits at once: a bad build, as Swarm would see it."""
    dockerfile = (f"FROM {SERVICE_IMAGE}:{BASE_TAG}\n"
                  'ENTRYPOINT ["sh", "-c", "echo a broken build; exit 3"]\n')
    subprocess.run(["docker", "build", "--tag", f"{SERVICE_IMAGE}:{tag}", "-"],
                   input=dockerfile, text=True, capture_output=True, timeout=300,
                   check=True)


@pytest.fixture(scope="module")
def swarm(mnist_path: Path) -> Iterator[Swarm]:
    """A single-node swarm running the stack with a trained model; all removed after."""
    problem = docker_problem()
    if problem:
        unavailable(problem)
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() != "inactive":
        unavailable("this engine is already part of a swarm; the test would change it")
    built = subprocess.run([str(ROOT / "scripts" / "build-standins")], cwd=ROOT,
                           capture_output=True, text=True, timeout=1800, check=False)
    if built.returncode != 0:
        unavailable(f"scripts/build-standins failed:\n{built.stderr[-2000:]}")
    subprocess.run(["docker", "compose", "--file", str(ROOT / "docker-compose.yml"),
                    "build"], cwd=ROOT, capture_output=True, timeout=1800, check=True)
    initialised = subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
                                 capture_output=True, text=True, timeout=120, check=False)
    if initialised.returncode != 0:
        unavailable(f"docker swarm init failed: {initialised.stderr.strip()}")
    running = Swarm(f"digits{uuid.uuid4().hex[:6]}")
    try:
        docker("volume", "create", f"{running.stack}_models")
        docker("run", "--rm", "--volume", f"{running.stack}_models:/models",
               "--volume", f"{mnist_path.resolve().parent}:/data:ro",
               f"digits-jobs:{BASE_TAG}", "train", "multiclass", "--epochs", "1",
               "--train-limit", "3000", "--data", f"/data/{mnist_path.name}", timeout=600)
        yield running
    finally:
        docker("stack", "rm", running.stack, check=False, timeout=120)
        wait_until(lambda: not docker("ps", "--all", "--quiet", "--filter",
                                      f"label=com.docker.stack.namespace={running.stack}"),
                   seconds=120, period=POLL_SECONDS, what="the stack's containers to go")
        docker("swarm", "leave", "--force", check=False, timeout=120)
        for volume in ("models", "prometheus-data"):
            docker("volume", "rm", f"{running.stack}_{volume}", check=False)
        tags = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                      f"reference={SERVICE_IMAGE}:{running.stack}-*").split()
        if tags:
            docker("image", "rm", *tags, check=False)


def test_rolling_updates_fail_no_request_and_a_broken_image_rolls_back(
        request: pytest.FixtureRequest, swarm: Swarm) -> None:
    first, second, broken = (f"{swarm.stack}-{n}" for n in ("1", "2", "broken"))
    for tag in (first, second):
        docker("tag", f"{SERVICE_IMAGE}:{BASE_TAG}", f"{SERVICE_IMAGE}:{tag}")
    build_broken(broken)
    started = time.monotonic()
    swarm.deploy(first)
    swarm.wait_all_on(first, f"{REPLICAS} healthy replicas on {first}")
    deployed = time.monotonic() - started

    load = Load(swarm)
    load.wait_answers(50)
    started = time.monotonic()
    swarm.deploy(second)
    wait_until(lambda: swarm.update_state() == "completed", seconds=ROLLOUT_SECONDS,
               period=POLL_SECONDS, what="the rolling update to complete")
    swarm.wait_all_on(second, f"every replica on {second}")
    rolled = time.monotonic() - started
    rollout = load.stop()

    load = Load(swarm)
    load.wait_answers(50)
    started = time.monotonic()
    swarm.deploy(broken)
    wait_until(lambda: swarm.update_state() == "rollback_completed",
               seconds=ROLLOUT_SECONDS, period=POLL_SECONDS,
               what="Swarm to roll the broken image back")
    swarm.wait_all_on(second, f"every replica back on {second}")
    rolled_back = time.monotonic() - started
    rollback = load.stop()

    to_terminal(request.config, f"\nswarm: {REPLICAS} replicas up in {deployed:.0f} s; "
                f"rolling update in {rolled:.0f} s, {rollout.answers} answers and "
                f"{len(rollout.failures)} failures; broken image rolled back in "
                f"{rolled_back:.0f} s, {rollback.answers} answers and "
                f"{len(rollback.failures)} failures")
    for phase in (rollout, rollback):
        assert phase.failures == [], phase.failures[:5]
        assert phase.answers >= 50
