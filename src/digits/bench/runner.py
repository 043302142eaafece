"""One benchmark run: the model in-process, then each scenario against served copies of it."""

import contextlib
import logging
import math
import multiprocessing
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from digits.bench import externals, inprocess, loadgen, workload
from digits.bench.externals import ExternalServer
from digits.bench.report import BenchReport, ScenarioResult
from digits.bench.scenarios import Scenario
from digits.bench.serving import ServedModel, ServerConfig
from digits.bench.stats import LatencySummary, per_second
from digits.modelstore import volume

log = logging.getLogger(__name__)

SAMPLE_IMAGES = 4096
# Time a client process needs to receive its plan before the warm-up begins.
HANDOFF_SECONDS = 0.5


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how long."""

    version_dir: Path  # the exact model version under test
    scenarios: list[Scenario]
    duration: float  # measured window per scenario, seconds
    warmup: float  # load before the window, seconds
    in_process_duration: float
    client_processes: int
    channels_per_process: int
    server: ServerConfig  # its batching switch is set per scenario
    request_timeout: float
    mnist: Path | None = None
    rounds: int = 1  # passes over the scenarios; the report gives each figure's median
    externals: tuple[ExternalServer, ...] = ()  # the servers of the external scenarios
    external_model: str = ""  # the model they are asked for ("": the one under test's name)


def run(options: BenchOptions, progress: Callable[[str], None]) -> BenchReport:
    """Measure every scenario served, each between two runs of the model alone at the
    same size (the reference is their mean).

    The servers for batching on and off run side by side (idle when not measured) and
    the scenarios alternate between them (and any external servers), so the load of a
    shared machine weighs on all alike and each ratio compares figures taken moments apart.
    """
    from digits.modelstore.saved_model import load_version
    from digits.service.decoding import Budget, decode_image
    from digits.service.settings import LimitSettings

    name, version = options.version_dir.parent.name, int(options.version_dir.name)
    for external in options.externals:
        externals.check_ready(external, options.external_model or name)
    model = load_version(options.version_dir)
    images = workload.sample_images(options.mnist, SAMPLE_IMAGES)
    encoded = [workload.encode_png(image) for image in images[:max(
        (s.images_per_request for s in options.scenarios), default=1)]]
    limits = LimitSettings()
    decode_then_predict = inprocess.decode_and_predict(model.predict, lambda data: decode_image(
        data, "image", Budget(limits.max_request_pixels, limits.max_image_pixels))[0])
    report = BenchReport(
        machine=machine_facts(), settings=_settings(options), in_process={})
    references: dict[int, list[float]] = {}

    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(_client_pool(options.client_processes))
        servers = _start_servers(stack, options, progress)
        external_servers = {external.name: external for external in options.externals}
        for round_number, scenario in _passes(options):
            size = scenario.images_per_request
            progress(f"running {scenario.name}" + (
                f" (round {round_number} of {options.rounds})" if options.rounds > 1 else ""))
            before = inprocess.measure(
                model.predict, images[:size], options.in_process_duration).images_per_second
            decoding = math.nan
            if scenario.encoding == "png":
                decoding = inprocess.measure(
                    decode_then_predict, encoded[:size],
                    options.in_process_duration).images_per_second
            served: ServedModel | ExternalServer = servers[scenario.batching]
            asked = (name, version)
            if scenario.external:  # the same requests, but version 0: the server's choice
                served = external_servers[scenario.server]
                asked = (options.external_model or name, 0)
            result = _run_scenario(
                scenario, served, pool, images, asked, options, before, decoding)
            # The model again right after: the mean of the two brackets the window, so a
            # machine whose speed drifts within the scenario weighs on both sides alike.
            reference = (before + inprocess.measure(
                model.predict, images[:size], options.in_process_duration).images_per_second) / 2
            references.setdefault(size, []).append(reference)
            report.results.append(replace(
                result, in_process_images_per_second=reference, round=round_number))

    report.in_process = {size: sum(values) / len(values)
                         for size, values in sorted(references.items())}
    report.machine["load_average_end"] = os.getloadavg()
    return report


def _start_servers(stack: contextlib.ExitStack, options: BenchOptions,
                   progress: Callable[[str], None]) -> dict[bool, ServedModel]:
    """The digits servers the scenarios need, by batching switch, stopped with ``stack``."""
    models_root = stack.enter_context(_served_root(options.version_dir))
    servers: dict[bool, ServedModel] = {}
    for batching in sorted({s.batching for s in options.scenarios if not s.external},
                           reverse=True):
        config = replace(options.server, batching=batching)
        progress(f"starting {config.processes} server process(es), batching "
                 f"{'on' if batching else 'off'}")
        servers[batching] = stack.enter_context(
            ServedModel(models_root, options.version_dir.parent.name, config))
    return servers


def _passes(options: BenchOptions) -> Iterator[tuple[int, Scenario]]:
    """(round, scenario) in run order: every scenario once per round, rounds in turn."""
    for round_number in range(1, options.rounds + 1):
        for scenario in options.scenarios:
            yield round_number, scenario


def _run_scenario(
    scenario: Scenario,
    served: ServedModel | ExternalServer,
    pool: ProcessPoolExecutor,
    images: np.ndarray,
    asked: tuple[str, int],
    options: BenchOptions,
    in_process: float,
    in_process_decode: float,
) -> ScenarioResult:
    """One scenario's load against ``served``, asking for ``asked``: (model, version)."""
    start_at = time.monotonic() + HANDOFF_SECONDS + options.warmup
    stop_at = start_at + options.duration
    futures = [pool.submit(loadgen.drive, plan)
               for plan in _plans(scenario, served, images, asked, options, start_at)]
    _sleep_until(start_at)
    cpu_start = served.cpu_seconds()
    batches_start = _batch_totals(served)
    _sleep_until(stop_at)
    cpu_stop = served.cpu_seconds()
    batches_stop = _batch_totals(served)
    load = loadgen.LoadResult(window=options.duration)
    for future in futures:
        load = load.merge(future.result(timeout=options.request_timeout + options.duration
                                         + options.warmup + 60))
    calls = batches_stop[1] - batches_start[1]
    client_seconds = HANDOFF_SECONDS + options.warmup + options.duration
    return ScenarioResult(
        scenario=scenario,
        requests_per_second=per_second(load.requests, load.window),
        images_per_second=per_second(load.images, load.window),
        latency=LatencySummary.of(load.latencies),
        errors=load.errors,
        in_process_images_per_second=in_process,
        mean_batch_size=(batches_stop[0] - batches_start[0]) / calls if calls else math.nan,
        server_cpu_seconds_per_second=per_second(cpu_stop - cpu_start, options.duration),
        client_cpu_seconds_per_second=per_second(load.cpu_seconds, client_seconds),
        in_process_decode_images_per_second=in_process_decode,
    )


def _plans(scenario: Scenario, served: ServedModel | ExternalServer, images: np.ndarray,
           asked: tuple[str, int], options: BenchOptions,
           start_at: float) -> list[loadgen.LoadPlan]:
    """The client processes' plans: requests for ``asked`` (model, version; version 0 lets
    the server choose) serialised once, the concurrency split between the processes."""
    model, version = asked
    target, http_path, header_lengths = served.target, "", list[int]()
    tls_ca = options.server.tls_ca if isinstance(served, ServedModel) else None
    if scenario.encoding == "oip-http":
        if not isinstance(served, ServedModel):
            raise ValueError(f"{scenario.name}: external servers are sent oip scenarios only")
        payloads, header_lengths, http_path = workload.http_payloads(
            images, scenario.images_per_request, model, version)
        target = served.http_target
    else:
        payloads = workload.request_payloads(
            images, scenario.images_per_request, scenario.encoding, model, version)
    return [
        loadgen.LoadPlan(
            target=target, encoding=scenario.encoding, payloads=payloads,
            http_path=http_path, header_lengths=header_lengths,
            tls_ca=tls_ca.read_bytes() if tls_ca else None,
            tls_server_name=options.server.tls_server_name,
            images_per_request=scenario.images_per_request, concurrency=share,
            start_at=start_at, stop_at=start_at + options.duration,
            timeout=options.request_timeout, channels=options.channels_per_process)
        for share in split(scenario.concurrency, options.client_processes)
    ]


def split(total: int, parts: int) -> list[int]:
    """``total`` clients over at most ``parts`` processes, as evenly as possible."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _batch_totals(served: ServedModel | ExternalServer) -> tuple[float, float]:
    """(images, model calls) the servers have batched so far (NaN: not known)."""
    if isinstance(served, ExternalServer):
        return math.nan, math.nan
    return (served.metric_total("digits_batch_size_images_sum"),
            served.metric_total("digits_batch_size_images_count"))


def _sleep_until(moment: float) -> None:
    remaining = moment - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


@contextlib.contextmanager
def _client_pool(processes: int) -> Iterator[ProcessPoolExecutor]:
    """Client processes started with 'spawn' (no TensorFlow threads inherited), warmed."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        # Each warm-up task holds its process a moment, so every process gets started.
        for future in [pool.submit(_warm_client, 0.2) for _ in range(processes)]:
            future.result(timeout=120)
        yield pool


def _warm_client(hold: float) -> int:
    """Import the load generator's dependencies in a client process."""
    import grpc  # noqa: F401

    time.sleep(hold)
    return os.getpid()


@contextlib.contextmanager
def _served_root(version_dir: Path) -> Iterator[Path]:
    """A models root holding only the version under test (a symbolic link to it), so the
    server loads exactly what the in-process measurement loaded."""
    with tempfile.TemporaryDirectory(prefix="digits-bench-models-") as root:
        model_dir = Path(root) / version_dir.parent.name
        model_dir.mkdir()
        (model_dir / version_dir.name).symlink_to(version_dir.resolve(), target_is_directory=True)
        yield Path(root)


def resolve_version(models: Path, model: str, version: int) -> Path:
    """The version directory of ``model`` under ``models`` (the newest for version 0)."""
    versions = volume.list_versions(models, model)
    if not versions:
        raise ValueError(f"no versions of model {model!r} under {models}; train one "
                         "(digits train multiclass) or pass a version directory")
    chosen = versions[-1] if version == 0 else version
    if chosen not in versions:
        raise ValueError(f"model {model!r} has no version {version} under {models}; "
                         f"available: {', '.join(map(str, versions))}")
    return volume.model_dir(models, model) / str(chosen)


def machine_facts() -> dict[str, object]:
    """Where the run happened: CPUs, their model, the load when it started."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
    }


def _settings(options: BenchOptions) -> dict[str, object]:
    settings = asdict(options)
    settings["version_dir"] = str(options.version_dir)
    settings["mnist"] = str(options.mnist) if options.mnist else None
    settings["scenarios"] = [scenario.name for scenario in options.scenarios]
    settings["external_model"] = options.external_model or options.version_dir.parent.name
    settings["server"] = {key: str(value) if isinstance(value, Path) else value
                          for key, value in settings["server"].items()}
    return settings
