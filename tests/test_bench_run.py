"""``digits bench`` end to end on a tiny model: real servers, client process, JSON out;
an external OIP server (another ``digits serve``) and the transport floor driven beside
them.

Checks that the run completes and reports what it measured; it asserts no speed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def test_bench_runs_scenarios_against_real_servers_and_writes_json(
    model_templates: Any, tmp_path: Path
) -> None:
    output = tmp_path / "bench.json"
    command = [
        sys.executable, "-m", "digits", "--log-level", "WARNING", "bench",
        str(model_templates.dense_a),
        "--scenario", "1:2:raw:on", "--scenario", "1:2:raw:off", "--scenario", "3:1:png:on",
        "--scenario", "4:2:oip:on", "--scenario", "2:3:oip-http:on",
        "--duration", "0.3", "--warmup", "0.1", "--rounds", "2", "--json", str(output),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 img x c2 raw" in result.stdout and "3 img x c1 png" in result.stdout
    assert "4 img x c2 oip" in result.stdout and "2 img x c3 oip-http" in result.stdout
    report = json.loads(output.read_text())
    rows = {row["name"]: row for row in report["results"]}
    assert set(rows) == {"1img-c2-raw-batching-on", "1img-c2-raw-batching-off",
                         "3img-c1-png-batching-on", "4img-c2-oip-batching-on",
                         "2img-c3-oip-http-batching-on"}
    for row in rows.values():
        assert row["errors"] == {}
        assert row["requests_per_second"] > 0 and row["latency"]["p99"] > 0
        assert row["images_per_second"] == pytest.approx(
            row["requests_per_second"] * row["scenario"]["images_per_request"])
        assert row["in_process_images_per_second"] > 0 and row["ratio"] > 0
    # Scraped while serving, so an observation may be half-counted: approximately 1.
    assert rows["1img-c2-raw-batching-off"]["mean_batch_size"] == pytest.approx(1.0, rel=0.05)
    assert rows["3img-c1-png-batching-on"]["in_process_decode_images_per_second"] > 0
    assert report["machine"]["cpus"] == os.cpu_count()
    # Each scenario once per round, rounds in turn; the table rows are their medians.
    assert [(row["name"], row["round"]) for row in report["rounds"]] == [
        (name, number) for number in (1, 2) for name in rows]
    assert "medians of 2 rounds" in result.stdout


def test_bench_runs_over_tls(model_templates: Any, tmp_path: Path) -> None:
    from support.certificates import Authority

    authority = Authority(tmp_path / "pki")
    server = authority.issue("localhost")
    output = tmp_path / "bench.json"
    command = [
        sys.executable, "-m", "digits", "--log-level", "WARNING", "bench",
        str(model_templates.dense_a), "--scenario", "2:2:raw:on",
        "--scenario", "2:2:oip-http:on", "--duration", "0.3", "--warmup", "0.1",
        "--tls-cert", str(server.cert), "--tls-key", str(server.key),
        "--tls-ca", str(authority.cert), "--json", str(output),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(output.read_text())["results"]
    assert [row["errors"] for row in rows] == [{}, {}]
    assert all(row["requests_per_second"] > 0 for row in rows)


def test_bench_drives_an_external_oip_server_with_the_same_load(
    model_templates: Any, models_root: Path, tmp_path: Path
) -> None:
    from support.models import install
    from support.prometheus import sample_value, scrape
    from support.serve_process import serving_process

    install(model_templates.dense_a, models_root, "a", 1)
    output = tmp_path / "bench.json"
    with serving_process(models_root, tmp_path / "external.log") as external:
        command = [
            sys.executable, "-m", "digits", "--log-level", "WARNING", "bench",
            str(model_templates.dense_a), "--scenario", "3:2:oip:on", "--scenario", "1:1:raw:on",
            "--scenario", "2:1:oip:on", "--external", f"other={external.target}",
            "--external-pid", f"other={external.process.pid}", "--floor",
            "--duration", "0.5", "--warmup", "0.1", "--json", str(output),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        classified = sample_value(scrape(external.metrics_port),
                                  "digits_images_classified_total", {"model": "a", "version": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 img x c2 oip @other" in result.stdout
    rows = json.loads(output.read_text())["results"]
    # The twins run right after their oip scenario, before the next one.
    assert [(row["name"], row["server"]) for row in rows] == [
        ("3img-c2-oip-batching-on", "digits"), ("3img-c2-oip@other", "other"),
        ("3img-c2-oip@floor", "floor"), ("1img-c1-raw-batching-on", "digits"),
        ("2img-c1-oip-batching-on", "digits"), ("2img-c1-oip@other", "other"),
        ("2img-c1-oip@floor", "floor")]
    twin = rows[1]
    assert twin["errors"] == {} and twin["images_per_second"] > 0
    assert twin["images_per_second"] == pytest.approx(3 * twin["requests_per_second"])
    assert twin["in_process_images_per_second"] > 0 and twin["ratio"] > 0
    assert twin["mean_batch_size"] is None  # not known for an external server
    assert twin["server_cpu_seconds_per_second"] > 0  # from --external-pid
    # The load reached the external server: at least what the window counted.
    assert classified is not None and classified >= twin["images_per_second"] * 0.5
    # The floor answered every request of its rows, and bounds the one-client ratio.
    floor = rows[-1]
    assert floor["errors"] == {} and floor["server_cpu_seconds_per_second"] > 0
    highest = floor["images_per_second"] / (
        floor["images_per_second"] + floor["in_process_images_per_second"])
    assert ("at 1 client and 2 images per request, no server can exceed a ratio of "
            f"{highest:.2f}") in result.stdout
