"""The groups of the server's settings, each checking its own values when built.

(``settings`` puts them together and turns them into options.)
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digits.api import DEFAULT_MAX_MESSAGE_BYTES
from digits.modelstore.names import InvalidModelName, validate_model_name


class InvalidSettings(ValueError):
    """Settings that cannot work; ``problems`` names each bad value and its rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings: " + "; ".join(problems))
        self.problems = problems


def _setting(help_text: str, option: str = "") -> dict[str, str]:
    """Field metadata: the help text (``--help``, docs) and the option name if not the field's."""
    return {"help": help_text, "option": option}


def _check(settings: object, rules: dict[str, tuple[str, Any]]) -> list[str]:
    """Problems of ``settings`` against rules {field: (rule text, predicate)}."""
    return [f"{name} must be {rule}, got {getattr(settings, name)}"
            for name, (rule, valid) in rules.items() if not valid(getattr(settings, name))]


class _Group:
    """A settings group: checks its values when built (``problems`` lists the rules broken)."""

    def problems(self) -> list[str]:
        return []

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidSettings(problems)


POSITIVE = ("positive", lambda value: value > 0)
NON_NEGATIVE = ("0 or more seconds", lambda value: value >= 0)
PORT = ("0..65535", lambda value: 0 <= value <= 65535)
FRACTION = ("from 0 to 1", lambda value: 0 <= value <= 1)
COUNT = ("0 or more", lambda value: value >= 0)


@dataclass(frozen=True)
class NetworkSettings(_Group):
    """Where the server listens and how long it drains (the server's)."""

    host: str = field(default="0.0.0.0", metadata=_setting(
        "Address the gRPC, HTTP and metrics servers listen on (127.0.0.1 for local "
        "only)."))
    port: int = field(default=50051, metadata=_setting(
        "gRPC port; 0 lets the OS pick one (logged at start-up)."))
    http_port: int = field(default=8080, metadata=_setting(
        "HTTP port of the REST APIs (the Open Inference Protocol's /v2 routes) and "
        "/openapi.json; 0 lets the OS pick one."))
    metrics_port: int = field(default=8000, metadata=_setting(
        "HTTP port serving Prometheus metrics at /metrics; 0 lets the OS pick one."))
    grace_period: float = field(default=10.0, metadata=_setting(
        "Seconds in-flight requests get to finish after SIGTERM before they are cut."))

    def problems(self) -> list[str]:
        return _check(self, {"port": PORT, "http_port": PORT, "metrics_port": PORT,
                             "grace_period": NON_NEGATIVE})


@dataclass(frozen=True)
class ConnectionSettings(_Group):
    """How many clients may connect and how long connections live (both front ends')."""

    max_connections: int = field(default=1000, metadata=_setting(
        "Most open client connections per port (gRPC and HTTP each); more are refused. "
        "Lowered at start-up if the open-files limit could not hold them."))
    max_streams_per_connection: int = field(default=100, metadata=_setting(
        "Most concurrent gRPC calls on one connection."))
    idle_timeout: float = field(default=120.0, metadata=_setting(
        "Seconds a connection may stay without a call before the server closes it."))
    max_connection_age: float = field(default=1800.0, metadata=_setting(
        "Seconds after which a gRPC connection is asked to reconnect (its calls finish "
        "first), so long-lived clients spread over new replicas."))
    keepalive_time: float = field(default=60.0, metadata=_setting(
        "Seconds between the server's keepalive pings on a quiet gRPC connection; a peer "
        "that does not answer within 20 s is dropped."))

    def problems(self) -> list[str]:
        return _check(self, {"max_connections": POSITIVE, "max_streams_per_connection": POSITIVE,
                             "idle_timeout": POSITIVE, "max_connection_age": POSITIVE,
                             "keepalive_time": POSITIVE})


@dataclass(frozen=True)
class TlsSettings(_Group):
    """Transport security of the gRPC and HTTP ports (the metrics port stays plain)."""

    tls_cert: str = field(default="", metadata=_setting(
        "PEM certificate (chain) both ports present; with --tls-key, they speak TLS only. "
        "Reread when the file changes: new connections get the new certificate."))
    tls_key: str = field(default="", metadata=_setting(
        "PEM private key of --tls-cert."))
    tls_client_ca: str = field(default="", metadata=_setting(
        "PEM certificate authority whose certificates clients must present (mutual TLS); "
        "needs --tls-cert."))

    @property
    def enabled(self) -> bool:
        return bool(self.tls_cert)

    def problems(self) -> list[str]:
        problems = []
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("tls_cert and tls_key go together; give both or neither")
        if self.tls_client_ca and not self.tls_cert:
            problems.append("tls_client_ca needs tls_cert and tls_key: clients are checked "
                            "only over TLS")
        return problems


@dataclass(frozen=True)
class VolumeSettings(_Group):
    """Which models are served and how versions come and go (the volume watcher's)."""

    models: Path = field(default=Path("models"), metadata=_setting(
        "Model volume: <models>/<name>/<version>/ directories written by the training jobs."))
    default_model: str = field(default="mnist", metadata=_setting(
        "Model answering requests that name none."))
    poll_interval: float = field(default=2.0, metadata=_setting(
        "Seconds between scans of the models directory for new and removed versions."))
    max_versions: int = field(default=3, metadata=_setting(
        "Newest valid versions kept loaded per model (older ones are unloaded); "
        "a request may pin any of them."))
    gate_tolerance: float = field(default=0.02, metadata=_setting(
        "How far below the accuracy its card claims a version may score on the golden "
        "set (beyond 3 standard errors of the sample) and still take traffic."))
    gate_margin: float = field(default=0.01, metadata=_setting(
        "How far below the current default version's golden accuracy a new version may "
        "score and still take traffic."))
    gate_min_accuracy: float = field(default=0.5, metadata=_setting(
        "Golden accuracy below which no version takes traffic, whatever its card claims."))
    canary_window: float = field(default=300.0, metadata=_setting(
        "Seconds over which the canary's predictions are compared with stable's."))
    canary_min_images: int = field(default=200, metadata=_setting(
        "Images each of canary and stable must have classified in a window before they "
        "are compared."))
    canary_max_excess: float = field(default=0.05, metadata=_setting(
        "How far the canary's share of low-confidence predictions (at most 0.5) or of "
        "failed model calls may exceed stable's in a window before this server stops "
        "sending it unpinned requests."))

    def problems(self) -> list[str]:
        problems = _check(self, {"poll_interval": POSITIVE, "max_versions": POSITIVE,
                                 "gate_tolerance": FRACTION, "gate_margin": FRACTION,
                                 "gate_min_accuracy": FRACTION, "canary_window": POSITIVE,
                                 "canary_min_images": POSITIVE,
                                 "canary_max_excess": FRACTION})
        try:
            validate_model_name(self.default_model)
        except InvalidModelName as error:
            problems.append(f"default_model: {error}")
        return problems


@dataclass(frozen=True)
class BatchingSettings(_Group):
    """How model calls are made: batched or one by one, and how much may wait (the predictors')."""

    enabled: bool = field(default=True, metadata=_setting(
        "Coalesce concurrent requests into batched model calls (off: one call each).",
        option="batching"))
    max_batch_size: int = field(default=1024, metadata=_setting(
        "Most images in one model call; concurrent requests are coalesced up to it."))
    batch_timeout: float = field(default=0.02, metadata=_setting(
        "Seconds the oldest queued request waits for others to join its batch."))
    max_queue_images: int = field(default=8192, metadata=_setting(
        "Images allowed to wait per model version; beyond it requests get "
        "RESOURCE_EXHAUSTED instead of a growing queue."))
    inference_threads: int = field(default=2, metadata=_setting(
        "Threads running model calls (TensorFlow releases the GIL while computing)."))
    concurrent_batches: int = field(default=2, metadata=_setting(
        "Most batches of one model version in the model at once; another starts beside "
        "a running one only when a full batch waits (at most --inference-threads run)."))
    intra_op_threads: int = field(default=0, metadata=_setting(
        "Threads TensorFlow splits one operation over; 0: one per core it may run on "
        "(in a container with a CPU limit, set the limit)."))
    inter_op_threads: int = field(default=0, metadata=_setting(
        "Operations TensorFlow runs side by side; 0: one per core it may run on."))

    def problems(self) -> list[str]:
        return _check(self, {"max_batch_size": POSITIVE, "batch_timeout": NON_NEGATIVE,
                             "max_queue_images": POSITIVE, "inference_threads": POSITIVE,
                             "concurrent_batches": POSITIVE, "intra_op_threads": COUNT,
                             "inter_op_threads": COUNT})


@dataclass(frozen=True)
class LimitSettings(_Group):
    """What one request may hold (the data plane's and the transport's)."""

    max_message_bytes: int = field(default=DEFAULT_MAX_MESSAGE_BYTES, metadata=_setting(
        "Largest request or response message in bytes (4096 raw images take "
        "about 3.3 MB)."))
    max_images_per_request: int = field(default=4096, metadata=_setting(
        "Most images in one Classify request; larger batches get INVALID_ARGUMENT."))
    max_image_pixels: int = field(default=16_000_000, metadata=_setting(
        "Most pixels in one PNG or JPEG file (a 12-megapixel phone photo fits), read from "
        "its header before decoding; larger files get INVALID_ARGUMENT."))
    max_request_pixels: int = field(default=64_000_000, metadata=_setting(
        "Most pixels the PNG and JPEG files of one request may hold in all."))

    def problems(self) -> list[str]:
        return _check(self, {"max_message_bytes": POSITIVE, "max_images_per_request": POSITIVE,
                             "max_image_pixels": POSITIVE, "max_request_pixels": POSITIVE})
