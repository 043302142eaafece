"""The benchmark's own logic: statistics, scenarios, requests, load generator, table."""

import contextlib
import io
import json
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from digits.bench import loadgen, workload
from digits.bench.externals import ExternalServer, external_servers, parse_external, with_twins
from digits.bench.report import BenchReport, ScenarioResult, format_table
from digits.bench.runner import split
from digits.bench.scenarios import Scenario, parse_scenario, standard_scenarios
from digits.bench.serving import ServerConfig, process_cpu_seconds
from digits.bench.stats import LatencySummary, per_second, ratio
from digits.oip import open_inference_pb2
from digits.v1 import classifier_pb2, classifier_pb2_grpc

from support.cli import digits_cli


def test_latency_percentiles_interpolate_between_ranks() -> None:
    summary = LatencySummary.of([float(value) for value in range(1, 101)])  # 1..100
    assert summary.p50 == pytest.approx(50.5)
    assert summary.p95 == pytest.approx(95.05)
    assert summary.p99 == pytest.approx(99.01)
    assert summary.mean == pytest.approx(50.5)


def test_latency_percentiles_ignore_order_and_handle_one_sample() -> None:
    shuffled = LatencySummary.of([0.3, 0.1, 0.2])
    assert (shuffled.p50, shuffled.p99) == (pytest.approx(0.2), pytest.approx(0.298))
    single = LatencySummary.of([0.004])
    assert single.p50 == single.p95 == single.p99 == 0.004


def test_empty_window_gives_nan_not_an_error() -> None:
    assert math.isnan(LatencySummary.of([]).p99)
    assert per_second(10, 0) == 0.0
    assert math.isnan(ratio(5.0, 0.0))
    assert ratio(3.0, 4.0) == 0.75


def test_standard_scenarios_cover_every_load_shape() -> None:
    scenarios = standard_scenarios()
    single = {(s.concurrency, s.encoding, s.batching)
              for s in scenarios if s.images_per_request == 1}
    assert single == {(c, e, b) for c in (1, 16, 64) for e in ("raw", "png")
                      for b in (True, False)} | {(c, e, True) for c in (1, 16, 64)
                                                 for e in ("oip", "oip-http")}
    large = {(s.images_per_request, s.concurrency, s.encoding)
             for s in scenarios if s.images_per_request > 1}
    assert large == {(n, c, e) for n in (256, 1024) for c in (1, 4)
                     for e in ("raw", "png", "oip", "oip-http")}
    assert len({s.name for s in scenarios}) == len(scenarios) == 34
    assert {s.encoding for s in standard_scenarios(("raw",))} == {"raw"}


def test_scenario_specs_parse_and_bad_ones_name_the_fix() -> None:
    assert parse_scenario("1:64:raw:on") == Scenario(1, 64, "raw", True)
    assert parse_scenario("1024:4:png:off") == Scenario(1024, 4, "png", False)
    for bad, message in [("1:64:raw", "expected"), ("0:4:raw:on", "positive"),
                         ("1:4:jpeg:on", "ENCODING"), ("1:4:raw:yes", "'on' or 'off'")]:
        with pytest.raises(ValueError, match=message):
            parse_scenario(bad)


def test_external_servers_parse_and_bad_ones_name_the_fix() -> None:
    assert parse_external("kserve=127.0.0.1:8081") == ("kserve", "127.0.0.1:8081")
    assert parse_external("other-2=[::1]:9000") == ("other-2", "[::1]:9000")
    assert parse_external("Triton_A=inference.local:8001")[1] == "inference.local:8001"
    for bad, message in [("kserve", "expected NAME=HOST:PORT"),
                         ("=127.0.0.1:1", "expected NAME=HOST:PORT"),
                         ("2fast=127.0.0.1:1", "a letter"),
                         ("a-name-far-too-long=127.0.0.1:1", "up to 15"),
                         ("digits=127.0.0.1:8081", "another NAME"),
                         ("kserve=127.0.0.1", "HOST:PORT after"),
                         ("kserve=127.0.0.1:0", "PORT from 1 to 65535"),
                         ("kserve=127.0.0.1:65536", "PORT from 1"),
                         ("kserve=::1:8081", "IPv6 HOST in brackets"),
                         ("kserve=:8081", "HOST:PORT after")]:
        with pytest.raises(ValueError, match=message):
            parse_external(bad)
    pid = os.getpid()
    assert external_servers(["a=h:1", "b=h:2"], [f"b={pid}"]) == [
        ExternalServer("a", "h:1"), ExternalServer("b", "h:2", pid)]
    for specs, pids, message in [(["a=h:1", "a=h:2"], [], "given twice"),
                                 (["a=h:1"], ["b=1"], "no --external server is named 'b'"),
                                 (["a=h:1"], ["a=x"], "positive integer"),
                                 (["a=h:1"], ["a=0"], "positive integer"),
                                 (["a=h:1"], [f"a={2**30}"], "no process")]:
        with pytest.raises(ValueError, match=message):
            external_servers(specs, pids)


def test_oip_scenarios_get_an_external_twin_right_after_them() -> None:
    raw, on, off, big = (Scenario(1, 4, "raw", True), Scenario(1, 4, "oip", True),
                         Scenario(1, 4, "oip", False), Scenario(1024, 1, "oip", True))
    twins = with_twins([raw, on, off, big], ["kserve", "other"])
    assert [(s.images_per_request, s.concurrency, s.encoding, s.server) for s in twins] == [
        (1, 4, "raw", "digits"), (1, 4, "oip", "digits"), (1, 4, "oip", "kserve"),
        (1, 4, "oip", "other"), (1, 4, "oip", "digits"),  # one twin per load shape
        (1024, 1, "oip", "digits"), (1024, 1, "oip", "kserve"), (1024, 1, "oip", "other")]
    assert len({s.name for s in twins}) == len(twins)
    assert with_twins([raw, on], []) == [raw, on]
    assert [s.server for s in with_twins(standard_scenarios(("oip",)), ["k"])] == [
        "digits", "k"] * 7
    with pytest.raises(ValueError, match="--encoding oip, or a scenario such as"):
        with_twins([raw, Scenario(1, 1, "oip-http", True)], ["kserve"])


def test_external_scenarios_are_named_for_their_server() -> None:
    digits, external = Scenario(1024, 4, "oip", True), Scenario(1024, 4, "oip", True, "kserve")
    assert (digits.name, digits.label) == ("1024img-c4-oip-batching-on", "1024 img x c4 oip")
    assert (external.name, external.label) == ("1024img-c4-oip@kserve", "1024 img x c4 oip @kserve")
    assert not digits.external and external.external


def test_bad_external_options_are_usage_errors(tmp_path: Path) -> None:
    for arguments, message in [
            (["--external", "digits=127.0.0.1:1"], "another NAME"),
            (["--external", "kserve=127.0.0.1:1", "--encoding", "raw"], "--encoding oip"),
            (["--external", "kserve=127.0.0.1:1", "--external-pid", "other=1"],
             "no --external server is named 'other'"),
            (["--floor", "--external", "floor=127.0.0.1:1"], "names the server of --floor"),
            (["--floor", "--encoding", "png"], "--encoding oip")]:
        result = digits_cli("bench", str(tmp_path), *arguments)
        assert result.exit_code == 2 and message in result.output, result.output
    assert "--external NAME=HOST:PORT" in digits_cli("bench", "--help").output


def test_concurrency_is_split_evenly_over_client_processes() -> None:
    assert split(64, 2) == [32, 32]
    assert split(16, 3) == [6, 5, 5]
    assert split(1, 4) == [1]
    assert sum(split(7, 2)) == 7


def test_server_flags_leave_unset_settings_to_the_server() -> None:
    assert ServerConfig(batching=False).flags() == ["--no-batching"]
    assert ServerConfig(max_batch_size=512, batch_timeout=0.001).flags() == [
        "--batching", "--max-batch-size", "512", "--batch-timeout", "0.001"]


def test_process_cpu_seconds_grows_with_work() -> None:
    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn a little CPU
        pass
    assert process_cpu_seconds(os.getpid()) > before


def test_requests_carry_exactly_the_images() -> None:
    pixels = workload.sample_images(None, 3, seed=1)
    assert pixels.shape == (3, 28, 28) and pixels.dtype == np.uint8 and pixels.max() > 0
    single = workload.build_request(pixels[:1], "raw", "mnist", 2)
    assert isinstance(single, classifier_pb2.ClassifyRequest)
    assert (single.model, single.version) == ("mnist", 2)
    assert single.images[0].pixels == pixels[0].tobytes()
    packed = workload.build_request(pixels, "raw", "mnist", 0)
    assert isinstance(packed, classifier_pb2.ClassifyRequest)
    assert packed.packed_pixels == pixels.tobytes() and not packed.images
    png = workload.build_request(pixels, "png", "mnist", 0)
    assert isinstance(png, classifier_pb2.ClassifyRequest)
    decoded = [np.asarray(Image.open(io.BytesIO(image.encoded))) for image in png.images]
    assert all((255 - d == p).all() for d, p in zip(decoded, pixels, strict=True))
    oip = workload.build_request(pixels, "oip", "mnist", 3)
    assert isinstance(oip, open_inference_pb2.ModelInferRequest)
    assert (oip.model_name, oip.model_version) == ("mnist", "3")
    assert [(t.name, t.datatype, list(t.shape)) for t in oip.inputs] == [
        ("pixels", "UINT8", [3, 28, 28])]
    assert list(oip.raw_input_contents) == [pixels.tobytes()]
    bodies, lengths, path = workload.http_payloads(pixels, 2, "mnist", 0, variants=1)
    header = json.loads(bodies[0][:lengths[0]])
    assert header["inputs"][0]["parameters"] == {"binary_data_size": 2 * 784}
    assert bodies[0][lengths[0]:] == pixels[:2].tobytes()
    assert path == "/v2/models/mnist/infer"
    assert workload.http_payloads(pixels, 1, "mnist", 4)[2] == "/v2/models/mnist/versions/4/infer"
    newest = workload.build_request(pixels, "oip", "mnist", 0)
    assert isinstance(newest, open_inference_pb2.ModelInferRequest)
    assert newest.model_version == ""


def test_payload_variants_hold_distinct_images() -> None:
    pixels = workload.sample_images(None, 16, seed=2)
    payloads = workload.request_payloads(pixels, 4, "raw", "mnist", 0, variants=3)
    requests = [classifier_pb2.ClassifyRequest.FromString(p) for p in payloads]
    assert [r.packed_pixels for r in requests] == [
        pixels[0:4].tobytes(), pixels[4:8].tobytes(), pixels[8:12].tobytes()]


def test_sample_images_come_from_mnist_when_given(tmp_path: Path) -> None:
    test_images = np.arange(5 * 784, dtype=np.uint32).reshape(5, 28, 28).astype(np.uint8)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_test=test_images)
    sample = workload.sample_images(path, 8)
    assert all(any((image == t).all() for t in test_images) for image in sample)


class FakeClassifier(classifier_pb2_grpc.ClassifierServicer):
    """Answers one prediction per image; model 'full' is overloaded, 'short' drops one."""

    async def Classify(self, request: Any, context: Any) -> Any:
        if request.model == "full":
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
        count = len(request.images) or len(request.packed_pixels) // 784
        if request.model == "short":
            count -= 1
        response = classifier_pb2.ClassifyResponse(model=request.model)
        for _ in range(count):
            response.predictions.add(label="7", class_index=7, confidence=0.9)
        return response


@pytest.fixture
async def fake_server() -> AsyncIterator[str]:
    server = grpc.aio.server()
    classifier_pb2_grpc.add_ClassifierServicer_to_server(FakeClassifier(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(grace=1)


def plan_for(target: str, model: str, images: int = 3, concurrency: int = 4,
             warmup: float = 0.0) -> loadgen.LoadPlan:
    pixels = workload.sample_images(None, 8)
    now = time.monotonic()
    return loadgen.LoadPlan(
        target=target, encoding="raw",
        payloads=workload.request_payloads(pixels, images, "raw", model, 0),
        images_per_request=images, concurrency=concurrency, start_at=now + warmup,
        stop_at=now + warmup + 0.3, timeout=10, channels=2)


async def test_load_generator_counts_requests_images_and_latencies(fake_server: str) -> None:
    result = await loadgen.run_plan(plan_for(fake_server, "ok"))
    assert result.requests > 0 and result.errors == {}
    assert result.images == 3 * result.requests
    assert len(result.latencies) == result.requests and min(result.latencies) > 0
    assert result.window == pytest.approx(0.3)


async def test_load_generator_leaves_warm_up_out_of_the_window(fake_server: str) -> None:
    plan = plan_for(fake_server, "ok")
    plan.start_at = plan.stop_at  # all warm-up, an empty window
    result = await loadgen.run_plan(plan)
    assert (result.requests, result.images, result.latencies, result.errors) == (0, 0, [], {})


@pytest.mark.parametrize(("model", "code"), [("full", "RESOURCE_EXHAUSTED"),
                                             ("short", "WRONG_PREDICTION_COUNT")])
async def test_load_generator_counts_errors_by_code(
    fake_server: str, model: str, code: str
) -> None:
    result = await loadgen.run_plan(plan_for(fake_server, model))
    assert result.requests == 0 and result.latencies == []
    assert set(result.errors) == {code} and result.errors[code] > 0


def test_results_of_client_processes_merge() -> None:
    first = loadgen.LoadResult(window=5, requests=2, images=2, latencies=[0.1, 0.2],
                               errors={"UNAVAILABLE": 1}, cpu_seconds=1.0)
    second = loadgen.LoadResult(window=5, requests=1, images=1, latencies=[0.3],
                                errors={"UNAVAILABLE": 2, "INTERNAL": 1}, cpu_seconds=0.5)
    merged = first.merge(second)
    assert (merged.requests, merged.images, merged.cpu_seconds) == (3, 3, 1.5)
    assert sorted(merged.latencies) == [0.1, 0.2, 0.3]
    assert merged.errors == {"UNAVAILABLE": 3, "INTERNAL": 1}


def result_for(scenario: Scenario, images_per_second: float,
               in_process: float) -> ScenarioResult:
    return ScenarioResult(
        scenario=scenario, requests_per_second=images_per_second / scenario.images_per_request,
        images_per_second=images_per_second,
        latency=LatencySummary(p50=0.0012, p95=0.0031, p99=0.0456, mean=0.002),
        errors={"DEADLINE_EXCEEDED": 2}, in_process_images_per_second=in_process,
        mean_batch_size=12.5, server_cpu_seconds_per_second=1.2,
        client_cpu_seconds_per_second=0.6)


def test_table_shows_figures_in_milliseconds_with_the_ratio() -> None:
    result = result_for(Scenario(1024, 4, "raw", True), 180_000.0, 300_000.0)
    assert result.ratio == pytest.approx(0.6) and result.error_count == 2
    lines = format_table([result]).splitlines()
    assert lines[0].split()[:2] == ["scenario", "batching"]
    assert set(lines[1]) <= {"-", " "}
    row = lines[2]
    for cell in ("1024 img x c4 raw", "176", "180,000", "1.20", "3.10", "45.60", "12.5",
                 "300,000", "0.60"):
        assert cell in row, cell
    markdown = format_table([result], markdown=True).splitlines()
    assert markdown[0].startswith("| scenario |") and markdown[1].startswith("| --- |")
    assert markdown[2].count("|") == markdown[0].count("|")


def test_external_rows_name_their_server_and_have_no_batching(tmp_path: Path) -> None:
    external = replace(result_for(Scenario(1024, 4, "oip", True, "kserve"), 90_000.0, 300_000.0),
                       mean_batch_size=math.nan, server_cpu_seconds_per_second=math.nan)
    digits = result_for(Scenario(1024, 4, "oip", True), 180_000.0, 300_000.0)
    lines = format_table([digits, external]).splitlines()
    assert lines[2].split()[:6] == ["1024", "img", "x", "c4", "oip", "on"]
    assert lines[3].split()[:7] == ["1024", "img", "x", "c4", "oip", "@kserve", "-"]
    assert "0.30" in lines[3]  # the ratio to the same in-process reference
    report = BenchReport(machine={}, settings={}, in_process={}, results=[digits, external])
    path = tmp_path / "bench.json"
    report.write_json(path)
    rows = json.loads(path.read_text())["results"]
    assert [(row["name"], row["server"]) for row in rows] == [
        ("1024img-c4-oip-batching-on", "digits"), ("1024img-c4-oip@kserve", "kserve")]
    assert rows[1]["mean_batch_size"] is None and rows[1]["server_cpu_seconds_per_second"] is None
    assert rows[1]["scenario"]["server"] == "kserve" and rows[1]["ratio"] == pytest.approx(0.3)


def test_json_report_has_every_figure_and_no_nan(tmp_path: Path) -> None:
    scenario = Scenario(1, 64, "png", False)
    report = BenchReport(machine={"cpus": 2}, settings={"duration": 5.0},
                         in_process={1: 3000.0},
                         results=[result_for(scenario, 1500.0, 3000.0)])
    path = tmp_path / "bench.json"
    report.write_json(path)
    data = json.loads(path.read_text())
    row = data["results"][0]
    assert row["name"] == scenario.name and row["ratio"] == pytest.approx(0.5)
    assert row["latency"]["p99"] == pytest.approx(0.0456)
    assert row["in_process_decode_images_per_second"] is None  # NaN is not JSON
    assert data["in_process_images_per_second"] == {"1": 3000.0}


def test_rounds_are_summarised_as_medians_with_errors_summed(tmp_path: Path) -> None:
    fast, slow = Scenario(1, 64, "raw", True), Scenario(1024, 1, "raw", True)
    rounds = []
    for number, (images, p99) in enumerate([(2000.0, 0.040), (900.0, 0.300), (2200.0, 0.044)],
                                           start=1):
        rounds.append(replace(result_for(fast, images, 3000.0), round=number,
                              latency=LatencySummary(0.03, 0.035, p99, 0.031)))
        rounds.append(replace(result_for(slow, 70_000.0 + number, 100_000.0), round=number))
    report = BenchReport(machine={}, settings={}, in_process={}, results=rounds)
    assert report.rounds == 3
    summary = report.summary()
    assert [result.scenario for result in summary] == [fast, slow]
    assert summary[0].images_per_second == 2000.0  # the slow spell's 900 is outvoted
    assert summary[0].latency.p99 == pytest.approx(0.044)
    assert summary[0].ratio == pytest.approx(2000.0 / 3000.0)
    assert summary[0].errors == {"DEADLINE_EXCEEDED": 6} and summary[0].round == 0
    assert summary[1].images_per_second == 70_002.0
    path = tmp_path / "bench.json"
    report.write_json(path)
    data = json.loads(path.read_text())
    assert [row["images_per_second"] for row in data["results"]] == [2000.0, 70_002.0]
    assert [row["round"] for row in data["rounds"]] == [1, 1, 2, 2, 3, 3]


def test_one_round_is_reported_as_measured() -> None:
    result = result_for(Scenario(1, 1, "raw", False), 500.0, 2500.0)
    assert BenchReport(machine={}, settings={}, in_process={},
                       results=[result]).summary() == [result]


def test_histogram_cost_prints_each_way_at_each_size(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from digits.bench import histogram_cost

    monkeypatch.setattr(histogram_cost, "ROUNDS", 1)
    histogram_cost.main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" values")[0].strip() for line in lines[:3]] == ["1", "8", "1024"]
    assert all(line.count(" us") == 3 for line in lines[:3])
    assert lines[3].startswith("load average")


def test_reference_is_the_mean_of_the_model_before_and_after_each_scenario(
    monkeypatch: pytest.MonkeyPatch, model_templates: Any
) -> None:
    from digits.bench import inprocess, runner

    speeds = iter([100.0, 300.0, 1000.0, 2000.0])  # before, after; then the next scenario
    moments: list[str] = []

    def measure(predict: Any, batch: Any, duration: float) -> inprocess.InProcessResult:
        moments.append("model")
        return inprocess.InProcessResult(len(batch), 1, next(speeds), LatencySummary.of([]))

    def run_scenario(scenario: Scenario, *args: Any) -> ScenarioResult:
        moments.append("served")
        return ScenarioResult(scenario, 1.0, float(scenario.images_per_request),
                              LatencySummary.of([0.1]), {}, args[-2], math.nan, 0.1, 0.1)

    monkeypatch.setattr(runner.inprocess, "measure", measure)
    monkeypatch.setattr(runner, "_run_scenario", run_scenario)
    monkeypatch.setattr(runner, "_start_servers", lambda *args: {True: None})
    monkeypatch.setattr(runner, "_client_pool", lambda processes: contextlib.nullcontext())
    options = runner.BenchOptions(
        version_dir=model_templates.dense_a, scenarios=[Scenario(2, 1, "raw", True),
                                                        Scenario(4, 1, "raw", True)],
        duration=1.0, warmup=0.0, in_process_duration=0.1, client_processes=1,
        channels_per_process=1, server=ServerConfig(), request_timeout=1.0)
    report = runner.run(options, progress=lambda news: None)
    assert moments == ["model", "served", "model"] * 2
    assert [row.in_process_images_per_second for row in report.results] == [200.0, 1500.0]
    assert report.in_process == {2: 200.0, 4: 1500.0}
