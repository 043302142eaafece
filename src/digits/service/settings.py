"""The server's settings: one typed object, each field a flag and a DIGITS_* variable."""

from dataclasses import dataclass, field
from pathlib import Path

from digits.modelstore.names import validate_model_name

ENV_PREFIX = "DIGITS_"
MIB = 1 << 20


def _help(text: str) -> dict[str, str]:
    """Field metadata holding the help text that feeds ``--help`` and the README."""
    return {"help": text}


@dataclass(frozen=True)
class ServingSettings:
    """Everything ``digits serve`` can be told; the defaults suit one container.

    Every field ``name`` is the flag ``--name`` (underscores as dashes) and the
    environment variable ``DIGITS_NAME``; a flag wins over the variable.
    """

    models: Path = field(default=Path("models"), metadata=_help(
        "Model volume: <models>/<name>/<version>/ directories written by the training jobs."))
    host: str = field(default="0.0.0.0", metadata=_help(
        "Address the gRPC and metrics servers listen on (127.0.0.1 for local only)."))
    port: int = field(default=50051, metadata=_help(
        "gRPC port; 0 lets the OS pick one (logged at start-up)."))
    metrics_port: int = field(default=8000, metadata=_help(
        "HTTP port serving Prometheus metrics at /metrics; 0 lets the OS pick one."))
    default_model: str = field(default="mnist", metadata=_help(
        "Model answering requests that name none."))
    poll_interval: float = field(default=2.0, metadata=_help(
        "Seconds between scans of the models directory for new and removed versions."))
    max_versions: int = field(default=3, metadata=_help(
        "Newest valid versions kept loaded per model (older ones are unloaded); "
        "a request may pin any of them."))
    max_batch_size: int = field(default=1024, metadata=_help(
        "Most images in one model call; concurrent requests are coalesced up to it."))
    batch_timeout: float = field(default=0.02, metadata=_help(
        "Seconds the oldest queued request waits for others to join its batch."))
    max_queue_images: int = field(default=8192, metadata=_help(
        "Images allowed to wait per model version; beyond it requests get "
        "RESOURCE_EXHAUSTED instead of a growing queue."))
    batching: bool = field(default=True, metadata=_help(
        "Coalesce concurrent requests into batched model calls (off: one call each)."))
    inference_threads: int = field(default=2, metadata=_help(
        "Threads running model calls (TensorFlow releases the GIL while computing)."))
    grace_period: float = field(default=10.0, metadata=_help(
        "Seconds in-flight requests get to finish after SIGTERM before they are cut."))
    max_message_bytes: int = field(default=16 * MIB, metadata=_help(
        "Largest request or response message in bytes (4096 raw images take "
        "about 3.3 MB)."))
    max_images_per_request: int = field(default=4096, metadata=_help(
        "Most images in one Classify request; larger batches get INVALID_ARGUMENT."))

    def __post_init__(self) -> None:
        problems = []
        for name in ("port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                problems.append(f"{name} must be 0..65535, got {getattr(self, name)}")
        positive = ("poll_interval", "max_versions", "max_batch_size", "max_queue_images",
                    "inference_threads", "max_message_bytes", "max_images_per_request")
        for name in positive:
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("batch_timeout", "grace_period"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more seconds, got {getattr(self, name)}")
        if self.max_images_per_request > self.max_queue_images:
            problems.append(
                f"max_images_per_request ({self.max_images_per_request}) must not exceed "
                f"max_queue_images ({self.max_queue_images}), or such requests never fit")
        try:
            validate_model_name(self.default_model)
        except ValueError as error:
            problems.append(f"default_model: {error}")
        if problems:
            raise ValueError("invalid settings: " + "; ".join(problems))


def grpc_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """gRPC server and channel options: explicit message size limits both ways."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def env_var(field_name: str) -> str:
    """The environment variable of a settings field: ``max_batch_size`` -> DIGITS_MAX_BATCH_SIZE."""
    return ENV_PREFIX + field_name.upper()


def flag(field_name: str) -> str:
    """The command-line flag of a settings field: ``max_batch_size`` -> --max-batch-size."""
    return "--" + field_name.replace("_", "-")
