"""Command-line tools the tests drive, from the machine's packages."""

import os
import shutil

import pytest


def required_tool(command: str, package: str) -> str:
    """The path of ``command``; a failure under CI (scripts/ensure-docker installs it
    there), a skip naming the package elsewhere."""
    path = shutil.which(command)
    if path is None:
        message = f"{command} missing: install Debian's {package} package (scripts/ensure-docker)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
