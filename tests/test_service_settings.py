"""Settings: every field is a flag and a DIGITS_* variable, validated with the fix named."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from digits.cli import main
from digits.service import server
from digits.service.metrics import ServiceMetrics
from digits.service.settings import (
    BatchingSettings,
    InvalidSettings,
    LimitSettings,
    NetworkSettings,
    ServingSettings,
    VolumeSettings,
    options,
)


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
    every = list(options())
    assert len(every) == 35
    for option in every:
        assert option.flag in text
        assert option.env_var in text
        assert " ".join(option.help.split()) in text


def test_defaults_are_the_documented_ones(captured: list[ServingSettings]) -> None:
    result = CliRunner().invoke(main, ["serve"], env={})
    assert result.exit_code == 0, result.output
    settings = captured[0]
    assert settings == ServingSettings()
    assert (settings.volume.models, settings.network.host, settings.network.port,
            settings.network.metrics_port, settings.volume.default_model) == (
        Path("models"), "0.0.0.0", 50051, 8000, "mnist")
    assert (settings.batching.max_batch_size, settings.batching.batch_timeout,
            settings.limits.max_images_per_request) == (1024, 0.02, 4096)


def test_variables_set_values_and_flags_win(captured: list[ServingSettings]) -> None:
    env = {"DIGITS_PORT": "6000", "DIGITS_BATCHING": "false", "DIGITS_MODELS": "/srv/models",
           "DIGITS_BATCH_TIMEOUT": "0.01", "DIGITS_DEFAULT_MODEL": "mnist-cnn"}
    result = CliRunner().invoke(main, ["serve", "--port", "7000"], env=env)
    assert result.exit_code == 0, result.output
    settings = captured[0]
    assert settings.network.port == 7000
    assert settings.batching.enabled is False
    assert settings.volume.models == Path("/srv/models")
    assert settings.batching.batch_timeout == 0.01
    assert settings.volume.default_model == "mnist-cnn"


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


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidSettings,
                       match=r"metrics_port must be 0\.\.65535.*max_batch_size must be positive"):
        ServingSettings.from_options(max_batch_size=0, metrics_port=-1)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: NetworkSettings(grace_period=-1), "grace_period must be 0 or more"),
    (lambda: VolumeSettings(max_versions=0), "max_versions must be positive"),
    (lambda: BatchingSettings(max_batch_size=0), "max_batch_size must be positive"),
    (lambda: BatchingSettings(batch_timeout=-1.0), "batch_timeout must be 0 or more"),
    (lambda: BatchingSettings(max_queue_images=0), "max_queue_images must be positive"),
    (lambda: LimitSettings(max_message_bytes=0), "max_message_bytes must be positive"),
    (lambda: ServingSettings(limits=LimitSettings(max_images_per_request=9000)),
     "must not exceed max_queue_images"),
])
def test_each_group_checks_its_own_limits_when_built(build: object, message: str) -> None:
    with pytest.raises(InvalidSettings, match=message):
        build()  # type: ignore[operator]


def test_options_round_trip_and_unknown_ones_are_refused() -> None:
    settings = ServingSettings.from_options(batching=False, max_batch_size=8, port=0)
    assert (settings.batching.enabled, settings.batching.max_batch_size,
            settings.network.port) == (False, 8, 0)
    assert ServingSettings.from_options(**settings.option_values()) == settings
    with pytest.raises(TypeError, match="unknown settings: max_batch"):
        ServingSettings.from_options(max_batch=8)


def test_docs_document_every_setting_and_metric() -> None:
    serving = (Path(__file__).parent.parent / "docs" / "serving.md").read_text(
        encoding="utf-8")
    for option in options():
        assert f"`{option.flag}" in serving, option.name
        assert f"`{option.env_var}`" in serving, option.name
    families = list(ServiceMetrics().registry.collect())
    assert len(families) == 27  # 21 of the service's, 6 of the process
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in serving, name
