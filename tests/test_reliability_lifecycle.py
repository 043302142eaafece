"""The reliability suite, lifecycle: hot swaps under load, SIGTERM with requests in flight,
memory over reload cycles, and training jobs killed mid-export. Figures as in
test_reliability_requests.py."""

import functools
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from digits.modelstore import volume
from digits.modelstore.saved_model import InvalidModel, load_version

from support.figures import Figures
from support.kills import kill_mid_export
from support.load import Load, seen_everywhere
from support.models import install
from support.network import free_ports
from support.polling import wait_for, wait_until
from support.prometheus import sample_value, scrape
from support.servers import loopback_settings, running_server, wait_serving
from support.sigterm import REQUESTS, drain_with_requests_in_flight

pytestmark = pytest.mark.reliability


async def test_hot_swaps_under_load_fail_no_request(
        model_templates: Any, models_root: Path, reliability: dict[str, Any],
        figures: Figures) -> None:
    """New versions roll in under four clients, the older ones retire (two stay loaded)."""
    swaps = reliability["swaps"]
    weights = {version: (model_templates.weights_a if version % 2 else
                         model_templates.weights_b) for version in range(1, swaps + 2)}
    install(model_templates.dense_a, models_root, "mnist", 1)
    settings = loopback_settings(models_root, poll_interval=0.05, max_versions=2)
    async with running_server(settings) as running:
        await wait_serving(running, "mnist", version=1)
        load = Load(running, weights, seconds=60 + 3 * swaps)
        for version in range(2, swaps + 2):
            template = model_templates.dense_a if version % 2 else model_templates.dense_b
            install(template, models_root, "mnist", version)
            if version > 3:  # now and then one leaves the disk instead of being superseded
                shutil.rmtree(models_root / "mnist" / str(version - 3), ignore_errors=True)

            async def answered_by(expected: int = version) -> bool:
                return await seen_everywhere(load, expected)

            await wait_for(answered_by, f"every client answered by version {version}")
        await load.until(100)
        await load.stop()
    figures.add("hot swaps under load (4 clients)", swaps)
    figures.add("requests answered during them", load.answered)
    figures.add("failed requests across the swaps", len(load.failures))
    assert load.failures == []


def test_sigterm_with_requests_in_flight_fails_none(
        model_templates: Any, tmp_path: Path, reliability: dict[str, Any],
        figures: Figures) -> None:
    completed = 0
    for run in range(reliability["sigterms"]):
        models_root = tmp_path / f"models-{run}"
        install(model_templates.slow, models_root, "mnist", 1)
        completed += drain_with_requests_in_flight(models_root, tmp_path / f"serve-{run}.log")
    figures.add("SIGTERMs with requests in flight", reliability["sigterms"])
    figures.add("in-flight requests failed by them",
                reliability["sigterms"] * REQUESTS - completed)
    assert completed == reliability["sigterms"] * REQUESTS


def test_memory_stays_flat_over_reload_cycles(
        model_templates: Any, models_root: Path, tmp_path: Path,
        reliability: dict[str, Any], figures: Figures) -> None:
    """A served version replaced by a new one, over and over: the server's resident memory
    after the first few cycles must not keep growing with them."""
    cycles = reliability["reloads"]
    install(model_templates.dense_a, models_root, "mnist", 1)
    port, http_port, metrics_port = free_ports(3)
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "digits", "serve", "--models", str(models_root),
               "--host", "127.0.0.1", "--port", str(port), "--http-port", str(http_port),
               "--metrics-port", str(metrics_port), "--poll-interval", "0.05",
               "--max-versions", "1"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    def serving(version: int) -> bool:
        try:
            text = scrape(metrics_port)
        except OSError:
            return False
        return sample_value(text, "digits_model_default_version", {"model": "mnist"}) == (
            version) and sample_value(text, "digits_model_versions_loaded",
                                      {"model": "mnist"}) == 1

    def exited() -> str | None:
        return None if process.poll() is None else log.read_text()

    rss: list[float] = []
    try:
        wait_until(lambda: serving(1), seconds=120, what="version 1", abort=exited)
        for version in range(2, cycles + 2):
            template = model_templates.dense_a if version % 2 else model_templates.dense_b
            install(template, models_root, "mnist", version)
            shutil.rmtree(models_root / "mnist" / str(version - 1))
            wait_until(functools.partial(serving, version), seconds=60,
                       what=f"version {version}", abort=exited)
            rss.append(sample_value(scrape(metrics_port), "process_resident_memory_bytes")
                       or 0.0)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    warm = min(3, len(rss) - 1)  # the first loads grow caches that then stay
    growth = (rss[-1] - rss[warm]) / 2**20
    per_cycle = growth / max(1, len(rss) - 1 - warm)
    figures.add("reload cycles (a new version replacing the served one)", cycles)
    figures.add("RSS after the first cycles / at the end, MB",
                f"{rss[warm] / 2**20:.0f} / {rss[-1] / 2**20:.0f}")
    figures.add("RSS growth per cycle after the first three, MB", round(per_cycle, 2))
    assert process.returncode == 0
    assert per_cycle < 2.0, rss


@pytest.mark.e2e
def test_kills_mid_export_never_expose_a_partial_version(
        models_root: Path, reliability: dict[str, Any], figures: Figures) -> None:
    rng = random.Random(5)
    caught_mid_export = partial = visible = 0
    for _ in range(reliability["kills"]):
        kill_mid_export(models_root, signal.SIGKILL, rng.uniform(0.0, 0.5))
        caught_mid_export += any(path.name.startswith(volume.STAGING_PREFIX)
                                 for path in (models_root / "killed").iterdir())
    for version in volume.list_versions(models_root, "killed"):
        visible += 1
        try:
            load_version(models_root / "killed" / str(version))
        except InvalidModel:
            partial += 1
    figures.add("exporting jobs SIGKILLed", reliability["kills"])
    figures.add("of which mid-export (a staging directory left)", caught_mid_export)
    figures.add("versions visible after them / partial", f"{visible} / {partial}")
    assert visible and partial == 0
