"""Shared fixtures: the real MNIST file, temporary model volumes."""

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """The real MNIST file named by DIGITS_MNIST (scripts/test sets it to ../shared/data).

    Fails rather than skips: the end-to-end tests are required.
    """
    value = os.environ.get("DIGITS_MNIST")
    if not value or not Path(value).is_file():
        pytest.fail("DIGITS_MNIST must name mnist.npz (scripts/test sets it from ../shared/data)")
    return Path(value)


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def model_templates(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Tiny real SavedModels for the service tests (see tests/support/models.py)."""
    from support.models import export_templates

    return export_templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture(scope="session")
def curl() -> str:
    """Debian's curl, the HTTP client users reach for first (scripts/ensure-docker installs
    it under CI)."""
    from support.tools import required_tool

    return required_tool("curl", "curl")


# The reliability suite's counts: a short form in every run, the long one on demand
# (DIGITS_RELIABILITY=long, which scripts/reliability sets).
RELIABILITY = {
    "short": {"fuzz": 2_000, "names": 10_000, "swaps": 10, "sigterms": 1, "reloads": 10,
              "kills": 2},
    "long": {"fuzz": 100_000, "names": 10_000, "swaps": 100, "sigterms": 5, "reloads": 100,
             "kills": 20},
}


@pytest.fixture(scope="session")
def reliability() -> dict[str, Any]:
    form = os.environ.get("DIGITS_RELIABILITY", "short")
    if form not in RELIABILITY:
        pytest.fail(f"DIGITS_RELIABILITY={form!r}: use 'short' or 'long'")
    return {"form": form, **RELIABILITY[form]}


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest, reliability: dict[str, Any]) -> Any:
    """The reliability suite's figures, printed at the end and kept in
    reports/reliability.json."""
    from support.figures import Figures

    collected = Figures(f"reliability figures ({reliability['form']} form)")
    yield collected
    root = Path(__file__).resolve().parent.parent
    collected.report(request.config, root / "reports" / "reliability.json")
