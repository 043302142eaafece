"""What a client process is asked to do, and what it reports back."""

from dataclasses import dataclass, field

from digits.bench.scenarios import Encoding


@dataclass
class LoadPlan:
    """What one client process does; times are time.monotonic(), which Linux shares
    between processes, so several client processes measure the same window."""

    target: str
    encoding: Encoding  # which protocol the payloads speak
    payloads: list[bytes]
    images_per_request: int
    concurrency: int
    start_at: float  # requests completing before this are warm-up
    stop_at: float  # no request is started after this
    timeout: float  # deadline of every request, seconds
    channels: int = 1  # separate gRPC connections (each reaches one server process)
    http_path: str = ""  # HTTP: the path posted to
    header_lengths: list[int] = field(default_factory=list)  # HTTP: per payload
    tls_ca: bytes | None = None  # TLS: the CA the clients trust (None: plaintext)
    tls_server_name: str = ""  # TLS: the name the server's certificate is issued to


@dataclass
class LoadResult:
    """What one or more client processes saw inside the measured window."""

    window: float
    requests: int = 0
    images: int = 0
    latencies: list[float] = field(default_factory=list)
    # Failed requests over the whole run (warm-up included), by status code name.
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # client CPU time over the whole run

    def merge(self, other: "LoadResult") -> "LoadResult":
        """Combine the results of client processes that measured the same window."""
        errors = dict(self.errors)
        for code, count in other.errors.items():
            errors[code] = errors.get(code, 0) + count
        return LoadResult(
            window=max(self.window, other.window),
            requests=self.requests + other.requests,
            images=self.images + other.images,
            latencies=self.latencies + other.latencies,
            errors=errors,
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
        )
