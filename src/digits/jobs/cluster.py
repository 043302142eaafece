"""Which worker of a multi-worker training run this process is.

TensorFlow's multi-worker strategy reads the cluster from ``TF_CONFIG``: every worker's
``host:port`` and this process's index. The jobs take it from there, or build it from
``--workers`` and ``--worker-index`` (which Compose and Kubernetes can fill from each
container's name or index). Worker 0 is the chief: it alone writes reports and exports.
"""

import json
import os
from dataclasses import dataclass

TF_CONFIG = "TF_CONFIG"


class ClusterError(ValueError):
    """The cluster description is unusable; the message says how to fix it."""


@dataclass(frozen=True)
class Cluster:
    """Every worker's address (the chief first) and this process's place among them."""

    workers: tuple[str, ...]
    index: int

    def __post_init__(self) -> None:
        if not self.workers:
            raise ClusterError("no workers given: pass --workers HOST:PORT,HOST:PORT")
        for address in self.workers:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ClusterError(f"worker address {address!r} is not HOST:PORT")
        if len(set(self.workers)) != len(self.workers):
            raise ClusterError(f"a worker address appears twice in {','.join(self.workers)}")
        if not 0 <= self.index < len(self.workers):
            raise ClusterError(f"worker index {self.index} is outside 0..{len(self.workers) - 1}"
                               f" for {len(self.workers)} workers")

    @property
    def size(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def __str__(self) -> str:
        return f"worker {self.index} of {self.size} ({self.workers[self.index]})"

    def tf_config(self) -> str:
        """This cluster as ``TF_CONFIG`` (workers only; the first is the chief)."""
        return json.dumps({"cluster": {"worker": list(self.workers)},
                           "task": {"type": "worker", "index": self.index}})

    @classmethod
    def parse(cls, workers: str, index: int) -> "Cluster":
        """From ``--workers host:port,host:port`` and ``--worker-index``."""
        return cls(tuple(address.strip() for address in workers.split(",") if address.strip()),
                   index)

    @classmethod
    def from_tf_config(cls, text: str) -> "Cluster":
        """From a ``TF_CONFIG`` value; a ``chief`` task, if any, counts as worker 0."""
        try:
            config = json.loads(text)
            cluster, task = config["cluster"], config["task"]
            chief, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
            kind, index = task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError) as error:
            raise ClusterError(f"TF_CONFIG is not a cluster description ({error}); expected "
                               '{"cluster": {"worker": [...]}, "task": {"type": "worker", '
                               '"index": N}}') from error
        if kind not in ("chief", "worker") or len(chief) > 1:
            raise ClusterError(f"TF_CONFIG task type {kind!r} (or {len(chief)} chiefs) is not "
                               "supported: use workers only, or one chief and workers")
        return cls(tuple(chief + workers), index + (len(chief) if kind == "worker" else 0))


def from_options(workers: str | None, index: int | None,
                 environment: dict[str, str] | None = None) -> Cluster | None:
    """The cluster from the options, else from ``TF_CONFIG``; None for a single process."""
    environment = dict(os.environ) if environment is None else environment
    if workers:
        if index is None:
            raise ClusterError("--workers needs --worker-index (or DIGITS_WORKER_INDEX)")
        return Cluster.parse(workers, index)
    if index is not None:
        raise ClusterError("--worker-index needs --workers (or DIGITS_WORKERS)")
    text = environment.get(TF_CONFIG, "").strip()
    return Cluster.from_tf_config(text) if text else None
