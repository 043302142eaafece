"""The metrics declaration is valid Prometheus and uses the documented names."""

from prometheus_client import generate_latest

from digits.service.metrics import ServiceMetrics


def test_metrics_render_with_prometheus_names() -> None:
    metrics = ServiceMetrics()
    metrics.requests.labels(method="Classify", code="OK").inc()
    metrics.batch_size.labels(model="mnist").observe(8)
    text = generate_latest(metrics.registry).decode()
    assert 'digits_requests_total{code="OK",method="Classify"} 1.0' in text
    assert 'digits_batch_size_images_bucket{le="8.0",model="mnist"} 1.0' in text


def test_each_instance_has_its_own_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.load_failures.inc()
    assert first.registry.get_sample_value("digits_model_load_failures_total") == 1
    assert second.registry.get_sample_value("digits_model_load_failures_total") == 0
