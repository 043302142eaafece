"""The ``digits`` command as tests run it: in-process through click, or as a real process."""

import os
import subprocess
import sys

from click.testing import CliRunner, Result

from digits.cli import main


def digits_cli(*arguments: str, env: dict[str, str] | None = None) -> Result:
    """Run ``digits ARGUMENTS`` in-process with a clean environment (or ``env``)."""
    return CliRunner().invoke(main, list(arguments), env=env if env is not None else {},
                              catch_exceptions=False)


def run_digits(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point, as a user would."""
    return subprocess.run([sys.executable, "-m", "digits", *arguments], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def error_line(completed: subprocess.CompletedProcess[str]) -> str:
    """The one ``Error:`` line of a failed command, which must show no traceback."""
    assert completed.returncode != 0, completed.stdout
    assert "Traceback" not in completed.stderr, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, completed.stderr
    return errors[0]
