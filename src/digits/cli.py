"""The ``digits`` command: one subcommand per role (train, evaluate, serve, classify,
promote, bench)."""

import logging
import os

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default=lambda: os.environ.get("DIGITS_LOG_LEVEL", "INFO"),
    show_default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Logging verbosity [env: DIGITS_LOG_LEVEL].",
)
@click.version_option(package_name="digits")
def main(log_level: str) -> None:
    """Handwritten-digit recognition: train MNIST models, serve them over gRPC."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # TensorFlow's C++ start-up chatter drowns the jobs' own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _register_service_commands() -> None:
    """``digits serve``, ``digits classify`` and ``digits health`` (service/cli.py), and
    ``digits promote`` (modelstore/cli.py)."""
    from digits.modelstore.cli import promote
    from digits.service import cli as service_cli

    for command in (service_cli.serve, service_cli.classify, service_cli.health, promote):
        main.add_command(command)


_register_service_commands()


# Packages of the [jobs] extra: a serving-only install (the service image) lacks them.
_JOBS_EXTRA_MODULES = {"matplotlib", "tqdm"}


def _register_job_commands() -> None:
    """``digits train ...`` and ``digits evaluate`` (jobs/cli.py); without the [jobs]
    extra, stand-ins that say how to install it, so ``serve`` still works."""
    try:
        from digits.jobs import cli as jobs_cli
    except ModuleNotFoundError as error:
        if error.name not in _JOBS_EXTRA_MODULES:
            raise
        missing = error.name
        for name in ("train", "evaluate"):

            @main.command(name, add_help_option=False,
                          context_settings={"ignore_unknown_options": True})
            @click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
            def unavailable(arguments: tuple[str, ...]) -> None:
                """Needs the jobs' dependencies: pip install 'digits[jobs]'."""
                raise click.ClickException(
                    f"the training jobs need the [jobs] extra ({missing} is not installed): "
                    "pip install 'digits[jobs]', or use the jobs image")
        return
    main.add_command(jobs_cli.train_group)
    main.add_command(jobs_cli.evaluate_command)


_register_job_commands()


def _register_bench_command() -> None:
    """``digits bench`` (bench/cli.py)."""
    from digits.bench.cli import bench

    main.add_command(bench)


_register_bench_command()
