"""Prometheus configuration and alert rules: promtool's checks and unit tests, metric names."""

import re
import subprocess
from pathlib import Path

import pytest

from digits.service.metrics import ServiceMetrics

from support.tools import required_tool

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "tests" / "prometheus").glob("*_test.yml"))
# What the alerts must cover: service down, error ratio, p99 latency, model
# load failures, no model loaded, a shift in the distribution of predicted digits.
REQUIRED_ALERTS = {
    "DigitsServiceDown", "DigitsHighErrorRatio", "DigitsHighLatencyP99",
    "DigitsModelLoadFailures", "DigitsNoModelLoaded", "DigitsPredictedDigitShift",
    "DigitsFileDescriptorsNearLimit", "DigitsCanaryWorseThanStable",
}
# A metric name in an expression; recording rules (level:metric:operation) are preceded
# by a colon and are not the service's metrics.
METRIC_NAME = re.compile(r"(?<![:\w])digits_[a-z0-9_]+")


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from Debian's prometheus package (scripts/ensure-docker installs it)."""
    return required_tool("promtool", "prometheus")


def run_promtool(promtool: str, *arguments: str | Path) -> str:
    """Run promtool; fail the test with its output unless it exits 0."""
    result = subprocess.run([promtool, *map(str, arguments)], capture_output=True,
                            text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {arguments[:2]} failed:\n{output}"
    return output


def exported_sample_names() -> set[str]:
    """Every sample name the service's metrics can expose (with _total, _bucket, ...),
    and the histograms' own names, which the alerts' descriptions mention."""
    suffixes = {"counter": ("_total",), "gauge": ("",),
                "histogram": ("", "_bucket", "_sum", "_count")}
    return {family.name + suffix
            for family in ServiceMetrics().registry.collect()
            for suffix in suffixes[family.type]}


def test_config_is_valid_and_finds_the_rule_files(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert f"{len(RULE_FILES)} rule files found" in output


def test_rules_are_valid(promtool: str) -> None:
    assert RULE_FILES, "no rule files under deploy/prometheus/rules"
    run_promtool(promtool, "check", "rules", *RULE_FILES)


def test_alerts_fire_when_they_should_and_only_then(promtool: str) -> None:
    assert RULE_TESTS, "no promtool rule tests under tests/prometheus"
    output = run_promtool(promtool, "test", "rules", *RULE_TESTS)
    assert "FAILED" not in output


def test_every_required_alert_is_defined() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)", (PROMETHEUS_DIR / "rules" / "alerts.yml")
                            .read_text(), re.MULTILINE))
    assert alerts >= REQUIRED_ALERTS, f"missing alerts: {REQUIRED_ALERTS - alerts}"


def test_rules_use_only_metrics_the_service_exports() -> None:
    exported = exported_sample_names()
    used = {name for path in RULE_FILES + RULE_TESTS
            for name in METRIC_NAME.findall(path.read_text())}
    assert used, "found no digits_* metric in the rules"
    assert used <= exported, (f"rules name metrics that src/digits/service/metrics.py does "
                              f"not export: {sorted(used - exported)}")


def test_every_replica_is_found_by_its_compose_name() -> None:
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    target = re.search(r'job_name: digits\n(?:.*\n)*?\s*dns_sd_configs:\n\s*- names: '
                       r'\["([\w-]+)"\]\n\s*type: A\n\s*port: (\d+)', config)
    assert target, "no DNS discovery of the replicas for job 'digits' in prometheus.yml"
    service, port = target.groups()
    assert re.search(rf"^  {service}:$", compose, re.MULTILINE), (
        f"prometheus.yml scrapes {service!r}, which is no service in docker-compose.yml")
    assert port == "8000", "the service's metrics port inside the Compose network is 8000"
