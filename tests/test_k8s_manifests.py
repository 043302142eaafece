"""The Kubernetes manifests, validated offline against the API's schemas (strict: an
unknown field is an error), and checked for what keeps the service safe to run: probes,
security contexts, resources, a termination grace that covers the drain."""

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir())


def base_documents() -> list[dict[str, Any]]:
    """Every object of the base, read from its files."""
    return [document for path in sorted((K8S / "base").glob("*.yaml"))
            if path.name != "kustomization.yaml"
            for document in yaml.safe_load_all(path.read_text()) if document]


def rendered(overlay: str) -> list[dict[str, Any]]:
    """The overlay as `kubectl kustomize` renders it (skips where kubectl is missing)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here to render the kustomize overlays")
    output = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == kind]


def test_every_base_manifest_validates() -> None:
    documents = base_documents()
    assert {d["kind"] for d in documents} >= {
        "Deployment", "Service", "PersistentVolumeClaim", "Job", "HorizontalPodAutoscaler",
        "PodDisruptionBudget"}
    for document in documents:
        validate(document)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_validates(overlay: str) -> None:
    documents = rendered(overlay)
    for document in documents:
        validate(document)
    check_hardened(documents)


def test_a_typo_fails_validation() -> None:
    deployment = copy.deepcopy(by_kind(base_documents(), "Deployment")[0])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_the_base_is_hardened() -> None:
    check_hardened(base_documents())


def check_hardened(documents: list[dict[str, Any]]) -> None:
    """What a test must fail without: probes, security contexts, limits, the drain."""
    workloads = by_kind(documents, "Deployment") + by_kind(documents, "Job")
    assert len(workloads) == 3
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}
    check_service_pods(by_kind(documents, "Deployment")[0])
    check_routing(documents)
    check_training_workers(documents)


def check_service_pods(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
    environment = {entry["name"]: entry["value"] for entry in container["env"]}
    # TensorFlow counts the node's cores, which a CPU limit does not change.
    cpus = str(int(float(container["resources"]["limits"]["cpu"])))
    assert environment["DIGITS_INTRA_OP_THREADS"] == environment["DIGITS_INTER_OP_THREADS"] == cpus
    drain = float(environment["DIGITS_GRACE_PERIOD"])
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pause + drain + 5
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True


def check_routing(documents: list[dict[str, Any]]) -> None:
    """Services, the budget and the autoscaler all point at the service's pods."""
    deployment = by_kind(documents, "Deployment")[0]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = {service["metadata"]["name"]: service for service in by_kind(documents,
                                                                            "Service")}
    assert services["digits-headless"]["spec"]["clusterIP"] == "None"
    # The training workers' Service names those pods (check_training_workers).
    services.pop("digits-train-workers")
    for service in services.values():
        assert service["spec"]["selector"].items() <= pod_labels.items()
    budget = by_kind(documents, "PodDisruptionBudget")[0]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    autoscaler = by_kind(documents, "HorizontalPodAutoscaler")[0]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    claims = {claim["metadata"]["name"] for claim in by_kind(documents,
                                                             "PersistentVolumeClaim")}
    for workload in by_kind(documents, "Deployment") + by_kind(documents, "Job"):
        used = {volume["persistentVolumeClaim"]["claimName"]
                for volume in workload["spec"]["template"]["spec"]["volumes"]
                if "persistentVolumeClaim" in volume}
        assert used <= claims


def check_training_workers(documents: list[dict[str, Any]]) -> None:
    """The Indexed Job's pods can name each other: DIGITS_WORKERS lists one address per
    index, each the pod's DNS name under the headless Service, and each pod reads its
    own index."""
    job = next(job for job in by_kind(documents, "Job")
               if job["spec"].get("completionMode") == "Indexed")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completions"] == spec["parallelism"] and spec["backoffLimit"] == 0
    service = next(service for service in by_kind(documents, "Service")
                   if service["metadata"]["name"] == pod["subdomain"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"][
        "labels"].items()
    container = pod["containers"][0]
    port = next(port["containerPort"] for port in container["ports"]
                if port["name"] == service["spec"]["ports"][0]["targetPort"])
    environment = {entry["name"]: entry for entry in container["env"]}
    expected = [f"{job['metadata']['name']}-{index}.{pod['subdomain']}:{port}"
                for index in range(spec["completions"])]
    assert environment["DIGITS_WORKERS"]["value"].split(",") == expected
    assert environment["DIGITS_WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']")
