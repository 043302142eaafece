"""The deploy files agree with each other, without an engine (test_stack.py runs them)."""

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()
STANDINS = (ROOT / "scripts" / "build-standins").read_text()


def standin_tag(variable: str) -> str:
    match = re.search(rf'^{variable}="([^"]+)"$', STANDINS, re.MULTILINE)
    assert match, f"scripts/build-standins defines no {variable}"
    return match.group(1)


def stage(name: str) -> str:
    """The Dockerfile text of one build stage."""
    match = re.search(rf"^FROM \S+ AS {name}$(.*?)(?=^FROM |\Z)", DOCKERFILE,
                      re.MULTILINE | re.DOTALL)
    assert match, f"no stage {name!r} in deploy/Dockerfile"
    return match.group(1)


def load_requirements_helper() -> ModuleType:
    path = ROOT / "deploy" / "pyproject_requirements.py"
    spec = importlib.util.spec_from_file_location("pyproject_requirements", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_standins_carry_the_tags_the_dockerfile_and_compose_use() -> None:
    assert f"ARG PYTHON_IMAGE={standin_tag('PYTHON_IMAGE')}\n" in DOCKERFILE
    assert f"image: {standin_tag('PROMETHEUS_IMAGE')}\n" in COMPOSE
    assert f"image: {standin_tag('NGINX_IMAGE')}\n" in COMPOSE


def test_every_image_tag_is_pinned() -> None:
    images = re.findall(r"^\s+image: (\S+)$", COMPOSE, re.MULTILINE)
    assert len(images) == 6  # train, service, proxy, prometheus, tensorboard, the workers
    for image in images:
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and tag not in ("latest", ""), f"{image} has no pinned tag"


@pytest.mark.parametrize("name", ["service", "jobs"])
def test_images_run_unprivileged_with_exec_form_entrypoints(name: str) -> None:
    text = stage(name)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), f"{name} image runs as root"
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)
    assert entrypoint and entrypoint.group(1).startswith("["), (
        f"{name} image needs an exec-form ENTRYPOINT so SIGTERM reaches the process")
    assert "COPY --from=build-" in text, f"{name} image should copy a venv from a build stage"


def test_service_image_checks_grpc_health() -> None:
    assert re.search(r"^HEALTHCHECK .*\n?.*digits health --server", stage("service"),
                     re.MULTILINE)


def test_published_ports_bind_to_loopback_by_default() -> None:
    ports = re.findall(r"^\s+- (\S+:\d+)$", COMPOSE, re.MULTILINE)
    assert len(ports) == 4  # the proxy's gRPC and HTTP, Prometheus, TensorBoard
    assert all(port.startswith("${DIGITS_BIND_ADDRESS:-127.0.0.1}:") for port in ports), ports


def test_service_reads_the_models_volume_only_after_training_succeeded() -> None:
    service = COMPOSE[COMPOSE.index("\n  service:"):COMPOSE.index("\n  proxy:")]
    assert "- models:/models:ro\n" in service
    assert "condition: service_completed_successfully" in service
    assert "stop_grace_period:" in service


def test_requirements_helper_expands_extras(tmp_path: Path) -> None:
    helper = load_requirements_helper()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "digits"\ndependencies = ["numpy>=1"]\n'
                         '[project.optional-dependencies]\njobs = ["tqdm"]\n'
                         'dev = ["digits[jobs]", "pytest"]\n')
    assert helper.requirements(pyproject, []) == ["numpy>=1"]
    assert helper.requirements(pyproject, ["dev"]) == ["numpy>=1", "pytest", "tqdm"]
    with pytest.raises(ValueError, match="no extra 'gpu'"):
        helper.requirements(pyproject, ["gpu"])


def test_the_service_may_open_enough_files_for_its_connections() -> None:
    service = COMPOSE[COMPOSE.index("  service:"):COMPOSE.index("  prometheus:")]
    assert re.search(r"ulimits:\s+nofile:\s+soft: \$\{DIGITS_NOFILE:-16384\}", service)


def test_swarm_sizes_tensorflow_by_the_cpu_limit() -> None:
    # TensorFlow counts the node's cores, which a CPU limit does not change.
    stack = yaml.safe_load((ROOT / "deploy" / "swarm" / "digits-stack.yml").read_text())
    service = stack["services"]["service"]
    cpus = str(int(float(service["deploy"]["resources"]["limits"]["cpus"])))
    environment = service["environment"]
    assert environment["DIGITS_INTRA_OP_THREADS"] == environment["DIGITS_INTER_OP_THREADS"] == cpus
