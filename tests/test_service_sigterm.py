"""The real ``digits serve`` process: SIGTERM with requests in flight, all complete, exit 0."""

from pathlib import Path
from typing import Any

from support.models import install
from support.sigterm import REQUESTS, drain_with_requests_in_flight


def test_sigterm_drains_in_flight_requests_and_exits_zero(
        model_templates: Any, models_root: Path, tmp_path: Path) -> None:
    install(model_templates.slow, models_root, "mnist", 1)
    assert drain_with_requests_in_flight(models_root, tmp_path / "serve.log") == REQUESTS
