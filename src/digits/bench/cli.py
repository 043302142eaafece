"""``digits bench``: serve a model on loopback, load it with concurrent clients, compare."""

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digits.bench.scenarios import ENCODINGS, Scenario, parse_scenario, standard_scenarios

if TYPE_CHECKING:  # imported when benchmarking, so that `digits --help` stays quick
    from digits.bench.report import BenchReport
    from digits.bench.runner import BenchOptions

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
# (warm-up, measured window, in-process window) in seconds.
FULL_TIMES = (1.0, 5.0, 1.0)
QUICK_TIMES = (0.3, 1.0, 0.3)


@click.command()
@click.argument("version_dir", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--models", type=click.Path(file_okay=False, path_type=Path),
              default=Path("models"), show_default=True, envvar="DIGITS_MODELS",
              show_envvar=True, help="Models root, when no VERSION_DIR is given.")
@click.option("--model", default="mnist", show_default=True,
              help="Model name under --models, when no VERSION_DIR is given.")
@click.option("--version", "version", type=click.IntRange(min=0), default=0,
              help="Version under --models [default: 0, the newest].")
@click.option("--quick", is_flag=True, help="Every scenario, briefly (a smoke run).")
@click.option("--duration", type=click.FloatRange(min=0.1), default=None,
              help=f"Measured seconds per scenario [default: {FULL_TIMES[1]}, "
                   f"quick {QUICK_TIMES[1]}].")
@click.option("--warmup", type=click.FloatRange(min=0), default=None,
              help=f"Seconds of load before each window [default: {FULL_TIMES[0]}, "
                   f"quick {QUICK_TIMES[0]}].")
@click.option("--scenario", "scenario_specs", multiple=True, metavar="IMAGES:CONC:ENC:on|off",
              help="Run only these scenarios (repeatable), e.g. 1:64:raw:on "
                   "[default: the standard set].")
@click.option("--encoding", "encodings", multiple=True, type=click.Choice(ENCODINGS),
              help="Limit the standard set to these encodings (repeatable).")
@click.option("--client-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes generating the load (the clients' concurrency is split "
                   "over them).")
@click.option("--channels-per-process", type=click.IntRange(min=1), default=4,
              show_default=True, help="gRPC connections per client process.")
@click.option("--server-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes sharing the port (SO_REUSEPORT).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=None,
              help="Server setting [default: the server's].")
@click.option("--batch-timeout", type=click.FloatRange(min=0), default=None,
              help="Server setting, seconds [default: the server's].")
@click.option("--max-queue-images", type=click.IntRange(min=1), default=None,
              help="Server setting [default: the server's].")
@click.option("--inference-threads", type=click.IntRange(min=1), default=None,
              help="Server setting [default: the server's].")
@click.option("--concurrent-batches", type=click.IntRange(min=1), default=None,
              help="Server setting [default: the server's].")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True, help="Deadline of each request, seconds.")
@click.option("--data", "mnist", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="DIGITS_MNIST", show_envvar=True,
              help="mnist.npz whose test images are sent [default: digits drawn by PIL].")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run every scenario this many times, rounds in turn, and report the "
                   "median of each figure (the JSON keeps every round).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every figure to this JSON file.")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown.")
@click.option("--tls-cert", type=_FILE, help="Serve over TLS with this PEM certificate "
              "(with --tls-key and --tls-ca).")
@click.option("--tls-key", type=_FILE, help="The private key of --tls-cert.")
@click.option("--tls-ca", type=_FILE, help="The CA the clients trust (TLS).")
@click.option("--tls-server-name", default="localhost", show_default=True,
              help="The name --tls-cert is issued to.")
@click.option("--external", "external_specs", multiple=True, metavar="NAME=HOST:PORT",
              help="Also drive this Open Inference Protocol v2 gRPC server (plaintext), "
                   "started by you, e.g. kserve=127.0.0.1:8081 (repeatable): each oip "
                   "scenario is followed by its twin sent there, same requests but for the "
                   "model name and an empty version.")
@click.option("--external-model", default=None,
              help="The model name the --external servers are asked for [default: the "
                   "name of the model under test, e.g. mnist].")
@click.option("--external-pid", "external_pid_specs", multiple=True, metavar="NAME=PID",
              help="The process of an --external server, so that its CPU time is measured "
                   "(repeatable) [default: not measured].")
@click.option("--floor", "with_floor", is_flag=True,
              help="Also send every oip scenario to a bare gRPC server that answers without "
                   "a model (rows @floor): the transport's own cost, and at one client the "
                   "highest ratio any server could reach.")
def bench(
    version_dir: Path | None, models: Path, model: str, version: int, quick: bool,
    duration: float | None, warmup: float | None, scenario_specs: tuple[str, ...],
    encodings: tuple[str, ...], client_processes: int, channels_per_process: int,
    server_processes: int, max_batch_size: int | None, batch_timeout: float | None,
    max_queue_images: int | None, inference_threads: int | None,
    concurrent_batches: int | None, request_timeout: float,
    mnist: Path | None, rounds: int, json_path: Path | None, markdown: bool,
    tls_cert: Path | None, tls_key: Path | None, tls_ca: Path | None, tls_server_name: str,
    external_specs: tuple[str, ...], external_model: str | None,
    external_pid_specs: tuple[str, ...], with_floor: bool,
) -> None:
    """Benchmark the served path against the model's own speed.

    Starts `digits serve` on 127.0.0.1 with one model version (VERSION_DIR, or the newest
    of --model under --models), drives it from separate client processes for a bounded
    time per scenario, and prints images/s, requests/s, latency percentiles and errors,
    each served figure with its ratio to the same model called in-process. With
    --external, other OIP v2 servers of the same model get the same oip load, interleaved.
    """
    from digits.bench import externals, floor, runner
    from digits.bench.serving import ServerConfig

    try:
        if version_dir is None:
            version_dir = runner.resolve_version(models, model, version)
        servers = externals.external_servers(external_specs, external_pid_specs)
        names = [server.name for server in servers]
        if with_floor and floor.NAME in names:
            raise ValueError(f"--external {floor.NAME}=...: {floor.NAME!r} names the server "
                             "of --floor; give the external server another NAME")
        scenarios = externals.with_twins(_scenarios(scenario_specs, encodings),
                                         names + [floor.NAME] * with_floor)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if len({tls_cert is None, tls_key is None, tls_ca is None}) != 1:
        raise click.UsageError("--tls-cert, --tls-key and --tls-ca go together")
    warm, window, in_process = QUICK_TIMES if quick else FULL_TIMES
    options = runner.BenchOptions(
        version_dir=version_dir.resolve(),
        scenarios=scenarios,
        duration=duration if duration is not None else window,
        warmup=warmup if warmup is not None else warm,
        in_process_duration=in_process,
        client_processes=client_processes,
        channels_per_process=channels_per_process,
        server=ServerConfig(
            processes=server_processes, max_batch_size=max_batch_size,
            batch_timeout=batch_timeout, max_queue_images=max_queue_images,
            inference_threads=inference_threads, concurrent_batches=concurrent_batches,
            tls_cert=tls_cert, tls_key=tls_key,
            tls_ca=tls_ca, tls_server_name=tls_server_name),
        request_timeout=request_timeout,
        mnist=mnist,
        rounds=rounds,
        externals=tuple(servers),
        external_model=external_model or "",
    )
    _run(options, markdown, json_path, with_floor)


def _run(options: "BenchOptions", markdown: bool, json_path: Path | None,
         with_floor: bool) -> None:
    """Run the benchmark, print the table, write the JSON; fail if any request failed."""
    from digits.bench import floor, runner
    from digits.bench.externals import ExternalServerError

    try:
        with contextlib.ExitStack() as stack:
            if with_floor:
                options = replace(options, externals=(
                    *options.externals, stack.enter_context(floor.started())))
            report = runner.run(
                options, progress=lambda news: click.echo(f"... {news}", err=True))
    except ExternalServerError as error:
        raise click.ClickException(str(error)) from None
    _print_report(report, options, markdown)
    if json_path is not None:
        report.write_json(json_path)
        click.echo(f"wrote {json_path}", err=True)
    errors = sum(result.error_count for result in report.results)
    if errors:
        raise click.ClickException(f"{errors} requests failed (see the errors column)")


def _scenarios(specs: tuple[str, ...], encodings: tuple[str, ...]) -> list[Scenario]:
    if specs:
        return [parse_scenario(spec) for spec in specs]
    return standard_scenarios(tuple(encodings) or ENCODINGS)  # type: ignore[arg-type]


def _print_report(report: "BenchReport", options: "BenchOptions", markdown: bool) -> None:
    """Where and how it was measured, then the table."""
    from digits.bench import floor
    from digits.bench.report import format_table

    machine = report.machine
    click.echo(f"model {options.version_dir}; {machine['cpus']} CPUs "
               f"({machine['cpu_model']}); load average "
               f"{_loads(machine['load_average_start'])} at start, "
               f"{_loads(machine['load_average_end'])} at end")
    click.echo(f"{options.client_processes} client process(es), "
               f"{options.server.processes} server process(es), "
               f"{options.duration:g} s per scenario after {options.warmup:g} s warm-up"
               + (f", medians of {options.rounds} rounds" if options.rounds > 1 else "")
               + "; ratio = served images/s / in-process images/s of the model at the same "
               "images per call; decode+model = the server's PNG work done in-process")
    for external in options.externals:
        if external.name == floor.NAME:
            click.echo(f"@{floor.NAME}: a bare grpc.aio server at {external.target} that "
                       "parses each request and answers without a model, process "
                       f"{external.pid}")
            continue
        click.echo(f"@{external.name}: the external OIP v2 server at {external.target}, asked "
                   f"for model {options.external_model or options.version_dir.parent.name!r} "
                   "(its own choice of version)"
                   + (f", process {external.pid}" if external.pid else "; its CPU unmeasured"))
    click.echo(format_table(report.summary(), markdown=markdown))
    for result in report.summary():
        scenario = result.scenario
        if scenario.server == floor.NAME and scenario.concurrency == 1:
            highest = floor.ceiling(result.images_per_second,
                                    result.in_process_images_per_second)
            click.echo(f"at 1 client and {scenario.images_per_request} images per request, "
                       f"no server can exceed a ratio of {highest:.2f} (model call and bare "
                       "exchange one after the other)")


def _loads(values: object) -> str:
    return "/".join(f"{value:.2f}" for value in values)  # type: ignore[attr-defined]
