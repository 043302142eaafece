"""Figures a test measured: printed at the end of the run and kept as JSON."""

import json
from pathlib import Path
from typing import Any

import pytest


def to_terminal(config: pytest.Config, text: str) -> None:
    """Write straight to the terminal, past output capturing (what capsys.disabled() does)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)


class Figures:
    """Named figures, in the order they were measured."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.values: dict[str, Any] = {}

    def add(self, name: str, value: Any) -> None:
        self.values[name] = value

    def table(self) -> str:
        width = max(map(len, self.values), default=0)
        lines = [f"  {name:<{width}}  {value}" for name, value in self.values.items()]
        return "\n".join([f"{self.title}:", *lines])

    def report(self, config: pytest.Config, path: Path) -> None:
        """Print the table and write the figures to ``path`` as JSON."""
        if not self.values:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.values, indent=2, default=str) + "\n")
        to_terminal(config, "\n" + self.table())
