"""Settings: every field is a flag and a DIGITS_* variable, validated with the fix named."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digits.cli import main
from digits.service import server
from digits.service.settings import ServingSettings, env_var, flag


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[ServingSettings]:
    """Settings ``digits serve`` would run with (the server itself is not started)."""
    seen: list[ServingSettings] = []

    async def fake_serve(settings: ServingSettings) -> None:
        seen.append(settings)

    monkeypatch.setattr(server, "serve", fake_serve)
    return seen


def test_help_lists_every_setting_with_its_flag_and_variable() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for setting in dataclasses.fields(ServingSettings):
        assert flag(setting.name) in text
        assert env_var(setting.name) in text
        assert " ".join(setting.metadata["help"].split()) in text


def test_defaults_match_the_agreed_interfaces(captured: list[ServingSettings]) -> None:
    result = CliRunner().invoke(main, ["serve"], env={})
    assert result.exit_code == 0, result.output
    settings = captured[0]
    assert (settings.models, settings.host, settings.port, settings.metrics_port,
            settings.default_model) == (Path("models"), "0.0.0.0", 50051, 8000, "mnist")


def test_variables_set_values_and_flags_win(captured: list[ServingSettings]) -> None:
    env = {"DIGITS_PORT": "6000", "DIGITS_BATCHING": "false", "DIGITS_MODELS": "/srv/models",
           "DIGITS_BATCH_TIMEOUT": "0.01", "DIGITS_DEFAULT_MODEL": "mnist-cnn"}
    result = CliRunner().invoke(main, ["serve", "--port", "7000"], env=env)
    assert result.exit_code == 0, result.output
    settings = captured[0]
    assert settings.port == 7000
    assert settings.batching is False
    assert settings.models == Path("/srv/models")
    assert settings.batch_timeout == 0.01
    assert settings.default_model == "mnist-cnn"


@pytest.mark.parametrize(("arguments", "message"), [
    (["--port", "70000"], "port must be 0..65535"),
    (["--poll-interval", "0"], "poll_interval must be positive"),
    (["--default-model", "MNIST"], "default_model: invalid model name"),
    (["--max-images-per-request", "9000", "--max-queue-images", "8000"],
     "must not exceed max_queue_images"),
    (["--grace-period", "-1"], "grace_period must be 0 or more"),
])
def test_bad_values_are_usage_errors_naming_the_setting(
        captured: list[ServingSettings], arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", *arguments], env={})
    assert result.exit_code == 2
    assert message in result.output
    assert captured == []


def test_settings_reject_bad_values_directly() -> None:
    values: dict[str, Any] = {"max_batch_size": 0, "metrics_port": -1}
    with pytest.raises(ValueError,
                       match=r"metrics_port must be 0\.\.65535.*max_batch_size must be positive"):
        ServingSettings(**values)


def test_readme_documents_every_setting_and_metric() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    serving = readme[readme.index("## Serving"):]
    for setting in dataclasses.fields(ServingSettings):
        assert f"`{flag(setting.name)}" in serving, setting.name
        assert f"`{env_var(setting.name)}`" in serving, setting.name
    from prometheus_client import Counter

    from digits.service.metrics import ServiceMetrics

    for metric in vars(ServiceMetrics()).values():
        if hasattr(metric, "_name"):
            name = metric._name + ("_total" if isinstance(metric, Counter) else "")
            assert f"`{name}`" in serving, name
