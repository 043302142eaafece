"""Multi-worker scaling on this machine: time to the same accuracy with 1 and 2 workers,
and what one step's gradient exchange costs.

Run through ``scripts/bench-workers``. Each configuration is a set of real ``digits
train`` processes on loopback running the same recipe (same global batch, epochs and
seed) through the multi-worker loop, so the only difference is how many processes
share the work. Rounds alternate the configurations; the load average is printed beside
each run because the two workers share this machine's cores.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from digits.jobs import reports

_ALLREDUCE_STEPS = 100
# The chief's log lines: when all workers joined, and each epoch's validation accuracy.
_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
_JOINED = re.compile(_STAMP + r".*all \d+ workers joined", re.MULTILINE)
_EPOCH = re.compile(_STAMP + r".*epoch (\d+)/\d+: .*val_accuracy ([0-9.]+)", re.MULTILINE)


def _ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _workers(count: int) -> str:
    return ",".join(f"127.0.0.1:{port}" for port in _ports(count))


def seconds_to_accuracy(chief_log: str, target: float) -> float | None:
    """Seconds from joining to the end of the first epoch at ``target`` validation
    accuracy, from the chief's log; None if no epoch reached it."""
    from datetime import datetime

    def stamp(text: str) -> datetime:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")

    joined = _JOINED.search(chief_log)
    if joined is None:
        return None
    for epoch in _EPOCH.finditer(chief_log):
        if float(epoch.group(3)) >= target:
            return (stamp(epoch.group(1)) - stamp(joined.group(1))).total_seconds()
    return None


def run_training(workers: int, arguments: list[str], scratch: Path,
                 target: float) -> dict[str, float | None]:
    """One training run on ``workers`` processes: wall and fit seconds, seconds to the
    target validation accuracy, test accuracy."""
    addresses = _workers(workers)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    processes = [subprocess.Popen(
        [sys.executable, "-m", "digits", "train", *arguments, "--models", str(scratch / "m"),
         "--reports", str(scratch / "r"), "--workers", addresses, "--worker-index", str(i)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(workers)]
    outputs = [process.communicate()[0] for process in processes]
    seconds = time.monotonic() - started
    for process, output in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise click.ClickException(f"a worker exited {process.returncode}:\n{output[-2000:]}")
    report_dir = Path(outputs[0].split("reports in ")[-1].split()[0])
    metrics = json.loads((report_dir / reports.METRICS_FILENAME).read_text())
    return {"workers": workers, "wall_seconds": seconds, "fit_seconds": metrics["fit_seconds"],
            "seconds_to_target": seconds_to_accuracy(outputs[0], target),
            "test_accuracy": metrics["test"]["accuracy"], "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def allreduce_cost(index: int, addresses: str) -> None:
    """In one of two worker processes: time all-reduces of the CNN's gradients; print
    milliseconds per step (the chief prints)."""
    import numpy as np
    import tensorflow as tf

    from digits.jobs import cnn, distributed
    from digits.jobs.cluster import Cluster

    cluster = Cluster.parse(addresses, index)
    joined = distributed.strategy(cluster)
    shapes = [tuple(variable.shape)
              for variable in cnn.build_model(cnn.Hyperparameters()).trainable_variables]
    gradients = [tf.ones(shape) for shape in shapes]

    def all_reduce() -> object:
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                              gradients)

    @tf.function
    def exchange() -> object:
        return joined.run(all_reduce)

    for _ in range(5):  # warm-up: tracing and the first connections
        exchange()
    times = []
    for _ in range(_ALLREDUCE_STEPS):
        started = time.perf_counter()
        exchange()
        times.append(time.perf_counter() - started)
    if cluster.is_chief:
        size = sum(int(np.prod(shape)) for shape in shapes) * 4
        print(json.dumps({"gradient_megabytes": size / 1e6,
                          "allreduce_ms_median": statistics.median(times) * 1e3,
                          "allreduce_ms_p90": sorted(times)[int(0.9 * len(times))] * 1e3}))


def measure_allreduce() -> dict[str, float]:
    addresses = _workers(2)
    processes = [subprocess.Popen(
        [sys.executable, "-m", "digits.jobs.workers_benchmark", "--allreduce-worker", str(i),
         "--addresses", addresses], stdout=subprocess.PIPE, text=True) for i in (0, 1)]
    outputs = [process.communicate()[0] for process in processes]
    result: dict[str, float] = json.loads(outputs[0].strip().splitlines()[-1])
    return result


@click.command()
@click.option("--experiment", type=click.Choice(["cnn", "multiclass"]), default="cnn",
              show_default=True)
@click.option("--epochs", type=int, default=12, show_default=True)
@click.option("--train-limit", type=int, default=None)
@click.option("--rounds", type=int, default=1, show_default=True)
@click.option("--target", type=float, default=0.99, show_default=True,
              help="Validation accuracy whose time to reach is compared.")
@click.option("--allreduce-worker", type=int, default=None, hidden=True)
@click.option("--addresses", default="", hidden=True)
def main(experiment: str, epochs: int, train_limit: int | None, rounds: int, target: float,
         allreduce_worker: int | None, addresses: str) -> None:
    """Time one recipe on 1 and 2 workers (alternating), then one step's all-reduce."""
    if allreduce_worker is not None:
        allreduce_cost(allreduce_worker, addresses)
        return
    arguments = [experiment, "--epochs", str(epochs)]
    if train_limit:
        arguments += ["--train-limit", str(train_limit)]
    runs = []
    with tempfile.TemporaryDirectory(prefix="digits-bench-workers-") as scratch:
        for round_number in range(rounds):
            for workers in (1, 2):
                runs.append(run_training(workers, arguments,
                                         Path(scratch) / f"{round_number}-{workers}", target))
                click.echo(json.dumps(runs[-1]))
    click.echo(f"\n{experiment}, {epochs} epochs{f', {train_limit} images' if train_limit else ''}"
               f", {os.cpu_count()} CPUs")
    click.echo(f"| workers | wall s | fit s | s to {target:.1%} validation | test accuracy "
               "| load before/after |")
    click.echo("| --- | --- | --- | --- | --- | --- |")
    for run in runs:
        reached = run["seconds_to_target"]
        click.echo(f"| {run['workers']} | {run['wall_seconds']:.0f} | {run['fit_seconds']:.0f} | "
                   f"{'not reached' if reached is None else f'{reached:.0f}'} | "
                   f"{run['test_accuracy']:.4f} | {run['load_before']:.2f} / "
                   f"{run['load_after']:.2f} |")
    exchange = measure_allreduce()
    click.echo(f"\nall-reduce of the CNN's gradients ({exchange['gradient_megabytes']:.2f} MB) "
               f"between 2 workers on loopback: median {exchange['allreduce_ms_median']:.1f} "
               f"ms, p90 {exchange['allreduce_ms_p90']:.1f} ms per step")


if __name__ == "__main__":
    main()
