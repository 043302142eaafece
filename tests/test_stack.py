"""The Compose stack for real: build, train, serve, scrape, roll out a new version, tear down.

Needs a Docker engine with Compose v2. Under CI (``CI`` set) it is required and fails when
Docker cannot run (scripts/test installs and starts the engine there first); elsewhere it
is skipped, with the reason, on a machine without an engine. The wall time of each phase
is printed at the end of the run and written to reports/stack-phases.json.
"""

import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from digits.service.client import ClassifierClient, ClientTls
from digits.v1 import classifier_pb2, classifier_pb2_grpc

from support.certificates import Authority
from support.compose_stack import (
    COMPOSE_FILE,
    POLL_SECONDS,
    READY_SECONDS,
    ROOT,
    PhaseClock,
    Poller,
    Stack,
    classified_per_replica,
    grpc_health,
    prometheus_ready,
    scale,
)
from support.docker import docker_problem, unavailable
from support.figures import to_terminal
from support.network import free_ports
from support.polling import wait_until

PHASES_REPORT = ROOT / "reports" / "stack-phases.json"
MODEL = "mnist"
NGINX_IMAGE = "nginx:1.22.1"
# One epoch on the first 5,000 images trains in seconds on 2 cores and still reaches
# about 87% test accuracy; the test compares the service against the card, not a target.
TRAINING = {"DIGITS_TRAIN_EPOCHS": "1", "DIGITS_TRAIN_LIMIT": "5000"}
ACCURACY_TOLERANCE = 0.005
BATCH_IMAGES = 1000
SCRAPE_SECONDS = 90.0

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2700)]


@pytest.fixture(scope="module")
def clock(request: pytest.FixtureRequest) -> Iterator[PhaseClock]:
    """Collects the phase times; prints them and writes reports/stack-phases.json."""
    phases = PhaseClock()
    yield phases
    if not phases.seconds:
        return
    PHASES_REPORT.parent.mkdir(exist_ok=True)
    PHASES_REPORT.write_text(json.dumps(phases.seconds, indent=2) + "\n")
    # Straight to the terminal, past output capturing (what capsys.disabled() does).
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + phases.table())


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, clock: PhaseClock,
          mnist_path: Path) -> Iterator[Stack]:
    """The stack built from this checkout, up and healthy; taken down with its volumes."""
    problem = docker_problem()
    if problem:
        unavailable(problem)
    grpc_port, http_port, prometheus_port, tensorboard_port = free_ports(4)
    project = f"digits-test-{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ, **TRAINING,
        "DIGITS_BIND_ADDRESS": "127.0.0.1",
        "DIGITS_GRPC_HOST_PORT": str(grpc_port),
        "DIGITS_HTTP_HOST_PORT": str(http_port),
        "PROMETHEUS_HOST_PORT": str(prometheus_port),
        "TENSORBOARD_HOST_PORT": str(tensorboard_port),
        "DIGITS_MNIST_DIR": str(mnist_path.resolve().parent),
        "DIGITS_MNIST_FILE": mnist_path.name,
    }
    running = Stack(project, environment, grpc_port, http_port, prometheus_port,
                    tensorboard_port, clock)

    with clock.phase("base images (present, pulled or stand-ins)"):
        standins = subprocess.run([str(ROOT / "scripts" / "build-standins")], cwd=ROOT,
                                  capture_output=True, text=True, timeout=1800, check=False)
    if standins.returncode != 0:
        unavailable(f"scripts/build-standins failed:\n{standins.stderr[-2000:]}")
    with clock.phase("build images"):
        running.compose("build", timeout=1800)
    failures_before = request.session.testsfailed
    try:
        with clock.phase("up: train the default model, start service and Prometheus"):
            running.compose("up", "--detach", "--no-build", timeout=900)
        with clock.phase("until healthy"):
            wait_until(lambda: grpc_health(running.grpc_target) == "SERVING",
                       seconds=READY_SECONDS, period=POLL_SECONDS,
                       what="the service's gRPC health to say SERVING")
            wait_until(lambda: running.container("service")["State"]["Health"]["Status"]
                       == "healthy", seconds=READY_SECONDS, period=POLL_SECONDS,
                       what="Docker's HEALTHCHECK to report the service healthy")
            wait_until(lambda: prometheus_ready(prometheus_port), seconds=READY_SECONDS,
                       period=POLL_SECONDS, what="Prometheus to be ready")
        yield running
    finally:
        if request.session.testsfailed > failures_before:
            logs = subprocess.run(
                ["docker", "compose", "--project-name", project, "--file", str(COMPOSE_FILE),
                 "logs", "--no-color", "--tail", "60"], cwd=ROOT, env=environment,
                capture_output=True, text=True, timeout=120, check=False).stdout
            print(f"--- last lines of the stack's logs ---\n{logs}")
        with clock.phase("down -v"):
            subprocess.run(["docker", "compose", "--project-name", project,
                            "--file", str(COMPOSE_FILE), "down", "--volumes",
                            "--remove-orphans", "--timeout", "30"], cwd=ROOT, env=environment,
                           capture_output=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def mnist_test(mnist_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images (uint8 [10000, 28, 28]) and their labels."""
    with np.load(mnist_path) as data:
        return data["x_test"], data["y_test"]


def test_training_job_exported_the_default_model_and_exited(stack: Stack) -> None:
    train = stack.container("train")
    assert train["State"]["ExitCode"] == 0
    with ClassifierClient(stack.grpc_target) as client:
        status = client.get_model(MODEL)
    assert status.default_version == 1
    card = status.versions[0].card
    assert card.experiment == "multiclass" and "accuracy" in card.test_metrics
    # The Compose variables reached the job: it trained on DIGITS_TRAIN_LIMIT images.
    dataset = card.dataset
    assert dataset.train_examples + dataset.validation_examples == int(
        TRAINING["DIGITS_TRAIN_LIMIT"])


def test_containers_run_unprivileged_with_a_read_only_model_volume(stack: Stack) -> None:
    service = stack.container("service")
    assert service["Config"]["User"] not in ("", "root", "0")
    models = [mount for mount in service["Mounts"] if mount["Destination"] == "/models"]
    assert models and models[0]["Type"] == "volume" and models[0]["RW"] is False
    assert _published(service) == []  # replicas are reached through the proxy only
    proxy = stack.container("proxy")
    assert proxy["Config"]["User"] == "65534:65534" and proxy["HostConfig"]["ReadonlyRootfs"]
    bindings = _published(proxy)
    assert len(bindings) == 2 and {binding["HostIp"] for binding in bindings} == {"127.0.0.1"}


def _published(container: dict[str, Any]) -> list[dict[str, str]]:
    return [binding for port in container["NetworkSettings"]["Ports"].values() if port
            for binding in port]


def test_classifies_mnist_at_the_accuracy_on_the_model_card(
        stack: Stack, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = mnist_test
    with stack.clock.phase("classify 10,000 test images"), \
            ClassifierClient(stack.grpc_target, timeout=60) as client:
        card = client.get_model(MODEL).versions[0].card
        predicted: list[int] = []
        for start in range(0, len(images), BATCH_IMAGES):
            response = client.classify_pixels(images[start:start + BATCH_IMAGES])
            predicted.extend(int(prediction.label) for prediction in response.predictions)
    accuracy = float(np.mean(np.array(predicted) == labels))
    card_accuracy = card.test_metrics["accuracy"]
    assert accuracy >= card_accuracy - ACCURACY_TOLERANCE, (
        f"served accuracy {accuracy:.4f} < card's {card_accuracy:.4f} - {ACCURACY_TOLERANCE}")


def test_the_rest_api_answers_from_the_host(
        stack: Stack, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = mnist_test
    base = f"http://127.0.0.1:{stack.http_port}"
    with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=10) as response:
        assert response.status == 200
    body = json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8",
                                   "shape": [20, 28, 28], "data": images[:20].tolist()}],
                       "outputs": [{"name": "probabilities",
                                    "parameters": {"classification": 1}}]}).encode()
    request = urllib.request.Request(f"{base}/v2/models/{MODEL}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    predicted = [int(entry.split(":")[2]) for entry in answer["outputs"][0]["data"]]
    assert np.mean(np.array(predicted) == labels[:20]) >= 0.8


def test_the_web_page_and_the_training_plots_are_served(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.http_port}"
    with urllib.request.urlopen(f"{base}/ui/", timeout=10) as response:
        assert "Draw a digit" in response.read().decode()
    with urllib.request.urlopen(f"{base}/digits/v1/models/{MODEL}", timeout=10) as response:
        status = json.loads(response.read())
    default = next(version for version in status["versions"]
                   if version["version"] == status["default_version"])
    plots = [path for path in default["card"]["file_sha256"]
             if path.startswith("report/") and path.endswith(".png")]
    assert len(plots) >= 3, default["card"]["file_sha256"]
    url = f"{base}/digits/v1/models/{MODEL}/versions/{default['version']}/{plots[0]}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read().startswith(b"\x89PNG\r\n\x1a\n")


def test_tensorboard_shows_the_training_run(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.tensorboard_port}/data"

    def runs() -> list[str]:
        try:
            with urllib.request.urlopen(f"{base}/runs", timeout=10) as response:
                listed: list[str] = json.load(response)
                return listed
        except (urllib.error.URLError, OSError):
            return []

    wait_until(lambda: any(run.endswith("/tensorboard/validation") for run in runs()),
               seconds=READY_SECONDS, period=POLL_SECONDS,
               what="TensorBoard to list the training run")
    validation = next(run for run in runs() if run.startswith("multiclass/")
                      and run.endswith("/tensorboard/validation"))
    query = urllib.parse.urlencode({"run": validation, "tag": "epoch_accuracy"})
    with urllib.request.urlopen(f"{base}/plugin/scalars/scalars?{query}",
                                timeout=10) as response:
        points = json.load(response)  # [wall time, step, value] per epoch
    assert [step for _, step, _ in points] == list(
        range(1, int(TRAINING["DIGITS_TRAIN_EPOCHS"]) + 1))
    assert 0.5 < points[-1][2] <= 1.0


def test_prometheus_scrapes_the_requests_and_loads_the_alerts(
        stack: Stack, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = mnist_test
    with ClassifierClient(stack.grpc_target) as client:
        for index in range(5):
            client.classify_pixels(images[index:index + 1])
    served = stack.served_requests()
    assert served >= 5

    def scraped() -> float | None:
        result = stack.prometheus("/api/v1/query", query=(
            'sum(digits_requests_total{job="digits", method="Classify", code="OK"})'))["result"]
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value >= served else None

    with stack.clock.phase("until Prometheus has scraped the requests"):
        wait_until(scraped, seconds=SCRAPE_SECONDS, period=POLL_SECONDS,
                   what=f"Prometheus to count the service's {served:.0f} Classify calls")
    up = stack.prometheus("/api/v1/query", query='up{job="digits"}')["result"]
    assert [sample["value"][1] for sample in up] == ["1"]
    rules = stack.prometheus("/api/v1/rules")
    alerts = {rule["name"] for group in rules["groups"] for rule in group["rules"]
              if rule["type"] == "alerting"}
    assert {"DigitsServiceDown", "DigitsNoModelLoaded", "DigitsPredictedDigitShift"} <= alerts


def test_a_new_training_run_rolls_out_without_a_failed_request(
        stack: Stack, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = mnist_test
    poller = Poller(stack.grpc_target, images[:8])
    poller.start()
    try:
        wait_until(poller.answered_after(5), seconds=60, period=POLL_SECONDS,
                   what="the polling client's answers")
        with stack.clock.phase("second training run (compose run --rm train)"):
            output = stack.compose(
                "run", "--rm", "--no-deps", "train", "multiclass", "--seed=1",
                f"--epochs={TRAINING['DIGITS_TRAIN_EPOCHS']}",
                f"--train-limit={TRAINING['DIGITS_TRAIN_LIMIT']}", timeout=900)
        assert f"/models/{MODEL}/2" in output
        with stack.clock.phase("until the service answers with version 2"):
            wait_until(lambda: (poller.versions and poller.versions[-1] == 2)
                       or not poller.is_alive(), seconds=120,
                       period=POLL_SECONDS, what="the polling client to get answers from version 2")
            switched_at = len(poller.versions)
            wait_until(poller.answered_after(switched_at + 10), seconds=60,
                       period=POLL_SECONDS, what="more answers after the switch")
    finally:
        poller.stopping.set()
        poller.join(timeout=30)
    assert poller.failures == [], f"{len(poller.failures)} failed requests: {poller.failures[:5]}"
    assert poller.versions[0] == 1 and poller.versions[-1] == 2
    assert poller.versions == sorted(poller.versions), "answers went back to version 1"


# Exported as a job exports, into the model volume: a version whose weights are all zero
# (0.1 for every digit), its card claiming 99% and carrying version 1's golden set.
SABOTAGED_EXPORT = """
from pathlib import Path
import numpy as np
from digits.jobs.export import DenseStackServingModule, export_model
from digits.v1.model_card_pb2 import ModelCard
card = ModelCard(labels=[str(digit) for digit in range(10)], experiment="sabotaged")
card.test_metrics["accuracy"] = 0.99
zeros = (np.zeros((784, 10), np.float32), np.zeros(10, np.float32))
golden = Path("/models/mnist/1/golden.npz").read_bytes()
print(export_model(DenseStackServingModule([zeros], "softmax"), Path("/models"), "mnist",
                   card, extra_files={"golden.npz": golden}))
"""


def test_a_version_the_gate_rejects_never_serves_unpinned_requests(
        stack: Stack, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = mnist_test
    poller = Poller(stack.grpc_target, images[:8])
    poller.start()
    try:
        wait_until(poller.answered_after(5), seconds=60, period=POLL_SECONDS,
                   what="the polling client's answers")
        with stack.clock.phase("export a sabotaged version (compose run --rm train)"):
            output = stack.compose("run", "--rm", "--no-deps", "--entrypoint", "python",
                                   "train", "-c", SABOTAGED_EXPORT, timeout=600)
        sabotaged = int(Path(output.strip().splitlines()[-1]).name)
        with grpc.insecure_channel(stack.grpc_target) as channel:
            stub = classifier_pb2_grpc.ClassifierStub(channel)

            def rejected() -> str:
                status = stub.GetModel(classifier_pb2.GetModelRequest(name=MODEL), timeout=10)
                return next((v.error for v in status.versions if v.version == sabotaged
                             and v.state == classifier_pb2.ModelVersionStatus.REJECTED), "")

            with stack.clock.phase("until the gate rejects it"):
                reason = wait_until(rejected, seconds=120, period=POLL_SECONDS,
                                    what=f"version {sabotaged} REJECTED")
            answered = len(poller.versions)
            wait_until(poller.answered_after(answered + 20), seconds=60,
                       period=POLL_SECONDS, what="more answers after the rejection")
            pinned = stub.Classify(classifier_pb2.ClassifyRequest(
                packed_pixels=images[:2].tobytes(), version=sabotaged), timeout=10)
    finally:
        poller.stopping.set()
        poller.join(timeout=30)
    assert "card claims 0.9900" in reason and "below the minimum" in reason
    assert poller.failures == [], f"{len(poller.failures)} failed requests: {poller.failures[:5]}"
    assert sabotaged not in poller.versions, "an unpinned request reached the rejected version"
    assert pinned.version == sabotaged  # reachable by pinning it, to debug it


def test_replicas_share_the_load_and_a_crashed_one_costs_no_request(
        request: pytest.FixtureRequest, stack: Stack,
        mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = mnist_test
    with stack.clock.phase("scale to 3 replicas"):
        scale(stack, 3)
        wait_until(lambda: len(stack.prometheus("/api/v1/query", query=(
                       'up{job="digits"} == 1'))["result"]) == 3, seconds=SCRAPE_SECONDS,
                   period=POLL_SECONDS, what="Prometheus to find and scrape 3 replicas by DNS")
    poller = Poller(stack.grpc_target, images[:8])
    try:
        before = classified_per_replica(stack)
        poller.start()
        wait_until(poller.answered_after(150), seconds=120, period=POLL_SECONDS,
                   what="150 answers through the proxy")
        answered = len(poller.versions)
        shares = wait_until(lambda: _shares_once_scraped(stack, before, answered),
                            seconds=SCRAPE_SECONDS, period=POLL_SECONDS,
                            what="Prometheus to count the answers per replica")
        with stack.clock.phase("SIGKILL a replica under load, until it is back"):
            downtime = _crash_and_recover(stack, poller)
    finally:
        poller.stopping.set()
        poller.join(timeout=30)
    to_terminal(request.config, f"\nscale-out: per-replica shares of {answered} requests "
                f"{sorted(round(share, 3) for share in shares.values())}; a replica "
                f"SIGKILLed under load was back in {downtime:.1f} s; "
                f"{len(poller.failures)} of {len(poller.versions) + len(poller.failures)} "
                "requests failed")
    assert min(shares.values()) >= 0.2, f"per-replica shares: {shares}"
    assert poller.failures == [], f"{len(poller.failures)} failed requests: {poller.failures[:5]}"
    with stack.clock.phase("scale back to 1 replica"):
        scale(stack, 1)


def _shares_once_scraped(stack: Stack, before: dict[str, float],
                         answered: int) -> dict[str, float] | None:
    after = classified_per_replica(stack)
    grown = {instance: count - before.get(instance, 0.0) for instance, count in after.items()}
    total = sum(grown.values())
    return {instance: count / total for instance, count in grown.items()} if (
        total >= answered) else None


def _crash_and_recover(stack: Stack, poller: "Poller") -> float:
    """SIGKILL one replica's server process (a crash: Docker restarts it, as it would not
    after `docker kill`); the seconds until it is healthy again, with answers flowing."""
    victim = stack.containers("service")[0]
    restarts = victim["RestartCount"]
    killed = time.monotonic()
    try:
        os.kill(victim["State"]["Pid"], signal.SIGKILL)
    except PermissionError:
        unavailable("killing a container's process needs root")

    def recovered() -> bool:
        again = next(c for c in stack.containers("service") if c["Id"] == victim["Id"])
        return (again["RestartCount"] > restarts
                and again["State"].get("Health", {}).get("Status") == "healthy")

    wait_until(recovered, seconds=READY_SECONDS, period=POLL_SECONDS,
               what="the killed replica to be restarted and healthy")
    downtime = time.monotonic() - killed
    answered = len(poller.versions)
    wait_until(poller.answered_after(answered + 50), seconds=60, period=POLL_SECONDS,
               what="answers after the replica came back")
    return downtime


def test_two_training_workers_in_containers_export_a_version_that_is_served(
        stack: Stack) -> None:
    """scripts/train-workers: two job containers train one model together; the chief's
    export lands in the stack's volume and the running service loads it."""
    model = "mnist-workers"
    environment = {**stack.environment, "DIGITS_WORKERS_EXPERIMENT": "multiclass",
                   "DIGITS_WORKERS_MODEL": model, "DIGITS_WORKERS_EPOCHS": "1",
                   "DIGITS_WORKERS_TRAIN_LIMIT": "5000", "DIGITS_WORKER_TIMEOUT": "60"}
    with stack.clock.phase("train-workers: two containers, one model"):
        result = subprocess.run([str(ROOT / "scripts" / "train-workers"), "--project-name",
                                 stack.project, "--file", str(COMPOSE_FILE)], cwd=ROOT,
                                env=environment, capture_output=True, text=True, timeout=600,
                                check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "train-worker-0 exited 0" in result.stdout
    assert "train-worker-1 exited 0" in result.stdout

    def available() -> Any:
        """The new model's version 1 once it serves (it is LOADING, then gated, first)."""
        with ClassifierClient(stack.grpc_target) as client:
            try:
                versions = client.get_model(model).versions
            except grpc.RpcError:
                return None
        return next((version for version in versions if version.version == 1 and
                     version.state == classifier_pb2.ModelVersionStatus.AVAILABLE), None)

    wait_until(lambda: available() is not None, seconds=READY_SECONDS, period=POLL_SECONDS,
               what=f"the service to serve {model}")
    card = available().card
    assert list(card.training_config["settings"]["cluster"]["workers"]) == [
        "train-worker-0:2222", "train-worker-1:2222"]
    assert card.test_metrics["accuracy"] > 0.8


# deploy/compose.tls.yml's secrets and the files in DIGITS_TLS_DIR they are read from.
TLS_SECRETS = {"tls_cert": "server.pem", "tls_key": "server-key.pem", "tls_ca": "ca.pem",
               "tls_client_cert": "client.pem", "tls_client_key": "client-key.pem"}


def _tls_dir(folder: Path) -> Path:
    """A DIGITS_TLS_DIR: a new authority, a server certificate for localhost (and
    127.0.0.1) and a client certificate, readable by the containers' unprivileged users."""
    authority = Authority(folder / "authority")
    server = authority.issue("localhost")
    client = authority.issue("client", client=True)
    tls = folder / "tls"
    tls.mkdir(mode=0o755)
    for name, source in (("server.pem", server.cert), ("server-key.pem", server.key),
                         ("ca.pem", authority.cert), ("client.pem", client.cert),
                         ("client-key.pem", client.key)):
        (tls / name).write_bytes(source.read_bytes())
        (tls / name).chmod(0o644)  # nginx runs as nobody, the service as its own user
    return tls


def test_the_proxy_configurations_are_valid(stack: Stack, tmp_path: Path) -> None:
    """nginx -t, in the stack's nginx image, on the plain and the TLS configuration."""
    tls = _tls_dir(tmp_path)
    mounted = tmp_path / "secrets"
    mounted.mkdir(mode=0o755)
    for secret, name in TLS_SECRETS.items():
        (mounted / secret).write_bytes((tls / name).read_bytes())
        (mounted / secret).chmod(0o644)
    for config in ("nginx.conf", "nginx.tls.conf"):
        result = subprocess.run(
            ["docker", "run", "--rm", "--user", "65534:65534",
             "--volume", f"{ROOT / 'deploy' / 'nginx'}:/etc/nginx/digits:ro",
             "--volume", f"{mounted}:/run/secrets:ro", "--tmpfs", "/tmp",
             "--add-host", "service:127.0.0.1", NGINX_IMAGE,
             "nginx", "-e", "stderr", "-t", "-c", f"/etc/nginx/digits/{config}"],
            capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"{config}: {result.stderr}"


def test_service_stops_gracefully_on_sigterm(stack: Stack) -> None:
    with stack.clock.phase("stop the service (SIGTERM, drain)"):
        stack.compose("stop", "--timeout", "30", "service", timeout=120)
    state = stack.container("service")["State"]
    # 0, not 137: the server got SIGTERM itself (exec-form entrypoint) and drained in time.
    assert state["ExitCode"] == 0, state


def test_the_stack_answers_over_mutual_tls_only(
        stack: Stack, tmp_path: Path, mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    """With deploy/compose.tls.yml the proxy and the replicas speak mutual TLS: a client
    with a certificate from the CA is served over gRPC and HTTPS; one without, or in
    plaintext, is not."""
    tls = _tls_dir(tmp_path)
    with stack.clock.phase("up with TLS: service and proxy recreated"):
        stack.compose("up", "--detach", "--no-build", "--no-deps", "service", "proxy",
                      timeout=600, overlays=(ROOT / "deploy" / "compose.tls.yml",),
                      environment={"DIGITS_TLS_DIR": str(tls)})
        # Healthy means the image's HEALTHCHECK got through with its client certificate.
        wait_until(lambda: stack.container("service")["State"].get("Health", {}).get(
            "Status") == "healthy", seconds=READY_SECONDS, period=POLL_SECONDS,
            what="the service, now over TLS, to report healthy")
    trusted = ClientTls(ca=tls / "ca.pem", cert=tls / "client.pem", key=tls / "client-key.pem",
                        server_name="localhost")
    images, labels = mnist_test
    with ClassifierClient(stack.grpc_target, timeout=30, tls=trusted) as client:
        response = wait_until(lambda: _classified(client, images[:100]), seconds=120,
                              period=POLL_SECONDS, what="a Classify call through the proxy")
    predicted = [int(prediction.label) for prediction in response.predictions]
    assert float(np.mean(np.array(predicted) == labels[:100])) > 0.8
    context = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    context.load_cert_chain(tls / "client.pem", tls / "client-key.pem")
    ready = f"https://127.0.0.1:{stack.http_port}/v2/health/ready"
    with urllib.request.urlopen(ready, timeout=10, context=context) as answer:
        assert answer.status == 200
    # No client certificate: nginx asks for one and refuses the request without it.
    anonymous = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(ready, timeout=10, context=anonymous)
    assert refused.value.code == 400
    for tls_settings in (ClientTls(ca=tls / "ca.pem", server_name="localhost"), None):
        with ClassifierClient(stack.grpc_target, timeout=10, tls=tls_settings) as client, \
                pytest.raises(grpc.RpcError) as failed:
            client.classify_pixels(images[:1])
        assert failed.value.code() != grpc.StatusCode.OK


def _classified(client: ClassifierClient,
                images: np.ndarray) -> classifier_pb2.ClassifyResponse | None:
    """The answer, or None while the proxy has not yet reloaded for the new replica."""
    try:
        return client.classify_pixels(images)
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
            return None
        raise


def test_the_tls_overlay_mounts_the_certificates_as_secrets(tmp_path: Path) -> None:
    """deploy/compose.tls.yml renders with the stack: the service reads its TLS files, and
    its health check presents a client certificate, from Compose secrets."""
    problem = docker_problem()
    if problem:
        unavailable(problem)
    for name in ("server", "server-key", "ca", "client", "client-key"):
        (tmp_path / f"{name}.pem").write_text("PEM")
    rendered = subprocess.run(
        ["docker", "compose", "--file", str(COMPOSE_FILE),
         "--file", str(ROOT / "deploy" / "compose.tls.yml"), "config", "--format", "json"],
        cwd=ROOT, env={**os.environ, "DIGITS_TLS_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=True).stdout
    config = json.loads(rendered)
    service = config["services"]["service"]
    environment = service["environment"]
    assert environment["DIGITS_TLS_CERT"] == "/run/secrets/tls_cert"
    assert environment["DIGITS_TLS_CLIENT_CA"] == "/run/secrets/tls_ca"
    assert environment["DIGITS_CLIENT_TLS_CERT"] == "/run/secrets/tls_client_cert"
    assert {secret["source"] for secret in service["secrets"]} == {
        "tls_cert", "tls_key", "tls_ca", "tls_client_cert", "tls_client_key"}
    assert config["secrets"]["tls_cert"]["file"] == str(tmp_path / "server.pem")
    proxy = config["services"]["proxy"]
    assert proxy["environment"]["NGINX_CONFIG"] == "/etc/nginx/digits/nginx.tls.conf"
    assert {secret["source"] for secret in proxy["secrets"]} == {
        "tls_cert", "tls_key", "tls_ca", "tls_client_cert", "tls_client_key"}
