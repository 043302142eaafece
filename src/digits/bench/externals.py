"""External Open Inference Protocol v2 servers that ``digits bench`` drives beside digits.

``--external NAME=HOST:PORT`` names a gRPC server the bench does not start (KServe's
ModelServer, say). Each oip scenario gets a twin for each external server, run right after
it with the same requests but for the model name and an empty version (the server picks
its own), so that the two are measured moments apart under the same load.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from digits.bench.scenarios import DIGITS, Scenario
from digits.bench.serving import process_cpu_seconds
from digits.oip import open_inference_pb2, open_inference_pb2_grpc

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,15}")
HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")  # a name, IPv4, or [IPv6]
EXAMPLE = "for example kserve=127.0.0.1:8081"
READY_TIMEOUT = 10.0  # seconds for each readiness question


class ExternalServerError(RuntimeError):
    """An external server cannot be reached, or it or its model is not ready."""


@dataclass(frozen=True)
class ExternalServer:
    """An OIP v2 gRPC server the bench does not start; with its pid, its CPU is measured."""

    name: str
    target: str  # HOST:PORT, plaintext gRPC
    pid: int | None = None

    def cpu_seconds(self) -> float:
        """CPU time its process has used so far; NaN when the pid is unknown."""
        return math.nan if self.pid is None else process_cpu_seconds(self.pid)


def parse_external(text: str) -> tuple[str, str]:
    """``NAME=HOST:PORT`` (e.g. ``kserve=127.0.0.1:8081``) -> (name, target)."""
    name, equals, target = text.partition("=")
    if not equals or not NAME.fullmatch(name):
        raise ValueError(f"--external {text!r}: expected NAME=HOST:PORT, NAME being a letter "
                         f"then up to 15 letters, digits, '-' or '_'; {EXAMPLE}")
    if name == DIGITS:
        raise ValueError(f"--external {text!r}: {DIGITS!r} names the servers the bench starts "
                         f"itself; give the external server another NAME, {EXAMPLE}")
    host, colon, port = target.rpartition(":")
    if not (colon and HOST.fullmatch(host) and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"--external {text!r}: expected HOST:PORT after '=' (PORT from 1 to "
                         f"65535, an IPv6 HOST in brackets); {EXAMPLE}")
    return name, target


def external_servers(specs: Sequence[str], pid_specs: Sequence[str] = ()) -> list[ExternalServer]:
    """The servers of the ``--external`` options, with the ``--external-pid`` pids."""
    targets: dict[str, str] = {}
    for spec in specs:
        name, target = parse_external(spec)
        if name in targets:
            raise ValueError(f"--external {spec!r}: {name!r} is given twice; give each server "
                             "a NAME of its own")
        targets[name] = target
    pids: dict[str, int] = {}
    for spec in pid_specs:
        name, _, pid = spec.partition("=")
        if name not in targets:
            raise ValueError(f"--external-pid {spec!r}: no --external server is named {name!r}; "
                             "use the NAME of an --external option, for example kserve=12345")
        if not pid.isdigit() or int(pid) < 1:
            raise ValueError(f"--external-pid {spec!r}: expected NAME=PID, PID a positive "
                             "integer, for example kserve=12345")
        if not Path(f"/proc/{int(pid)}").is_dir():
            raise ValueError(f"--external-pid {spec!r}: no process {int(pid)} is running; "
                             "give the pid of the server's process")
        pids[name] = int(pid)
    return [ExternalServer(name, target, pids.get(name)) for name, target in targets.items()]


def with_twins(scenarios: Sequence[Scenario], servers: Sequence[str]) -> list[Scenario]:
    """``scenarios`` in order, each digits oip scenario followed by its twin for every
    external server (one twin per load shape: an external server has no batching switch)."""
    if not servers:
        return list(scenarios)
    if not any(scenario.encoding == "oip" for scenario in scenarios):
        raise ValueError("--external servers are sent OIP v2 over gRPC, and no oip scenario "
                         "is selected: add --encoding oip, or a scenario such as "
                         "--scenario 1:1:oip:on")
    ordered: list[Scenario] = []
    for scenario in scenarios:
        ordered.append(scenario)
        if scenario.encoding == "oip" and not scenario.external:
            names = {twin.name for twin in ordered}
            ordered += [twin for twin in (replace(scenario, server=server) for server in servers)
                        if twin.name not in names]
    return ordered


def check_ready(server: ExternalServer, model: str, timeout: float = READY_TIMEOUT) -> None:
    """Ask ``server`` whether it and ``model`` are ready (OIP ServerReady, ModelReady)."""
    with grpc.insecure_channel(server.target) as channel:
        stub = open_inference_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            server_ready = stub.ServerReady(
                open_inference_pb2.ServerReadyRequest(), timeout=timeout).ready
            model_ready = stub.ModelReady(
                open_inference_pb2.ModelReadyRequest(name=model), timeout=timeout).ready
        except grpc.RpcError as error:
            raise ExternalServerError(
                f"external server {server.name} at {server.target} did not answer "
                f"({error.code().name}: {error.details()}); start it (plaintext gRPC) or "
                "correct --external") from None
    if not (server_ready and model_ready):
        raise ExternalServerError(
            f"external server {server.name} at {server.target} says "
            + ("it is not ready" if not server_ready else f"model {model!r} is not ready")
            + "; wait for it to load, or name the model it serves with --external-model")
