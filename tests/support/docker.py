"""Whether Docker can run the container tests here, and what to do when it cannot."""

import os
import shutil
import subprocess

import pytest


def docker_problem() -> str | None:
    """Why Docker cannot run the stack here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command: run scripts/ensure-docker"
    checks = {("docker", "info"): "the Docker engine does not answer: run scripts/ensure-docker",
              ("docker", "compose", "version"): "no Compose v2: run scripts/ensure-docker"}
    for command, problem in checks.items():
        try:
            subprocess.run(command, capture_output=True, timeout=60, check=True)
        except (subprocess.SubprocessError, OSError):
            return problem
    return None


def unavailable(reason: str) -> None:
    """Fail under CI, where the container tests are required; skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"the container tests are required under CI: {reason}")
    pytest.skip(reason)


def docker(*arguments: str, timeout: float = 120, check: bool = True,
           env: dict[str, str] | None = None) -> str:
    """Run ``docker ARGUMENTS``; its output, failing the test with it when it fails."""
    result = subprocess.run(["docker", *arguments], capture_output=True, text=True,
                            timeout=timeout, check=False, env=env)
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(arguments)} exited {result.returncode}:\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout
