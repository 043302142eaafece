"""The metrics declaration is valid Prometheus and uses the documented names."""

import numpy as np
import pytest
from prometheus_client import generate_latest

from digits.service.metrics import FEW_IMAGES, PredictionMetrics, ServiceMetrics


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


def _samples(metrics: ServiceMetrics) -> list[tuple[str, list[tuple[str, str]], float]]:
    return sorted((s.name, sorted(s.labels.items()), round(s.value, 6))
                  for family in metrics.registry.collect()
                  for s in family.samples if not s.name.endswith("_created"))


def test_prediction_metrics_count_the_same_one_image_at_a_time_as_in_bulk() -> None:
    probabilities = np.random.default_rng(1).dirichlet(np.ones(10), 3 * FEW_IMAGES)
    labels = [str(digit) for digit in range(10)]
    one_at_a_time, bulk = ServiceMetrics(), ServiceMetrics()
    single = PredictionMetrics(one_at_a_time, "mnist", labels)
    for row in probabilities:
        single.record(row[np.newaxis])
    PredictionMetrics(bulk, "mnist", labels).record(probabilities)

    assert _samples(one_at_a_time) == _samples(bulk)
    predicted = np.bincount(probabilities.argmax(axis=1), minlength=10)
    for digit in range(10):
        value = bulk.registry.get_sample_value(
            "digits_predictions_total", {"model": "mnist", "label": str(digit)})
        # Only predicted labels become series.
        assert value == (predicted[digit] or None)
    assert bulk.registry.get_sample_value(
        "digits_images_classified_total", {"model": "mnist"}) == len(probabilities)
    assert bulk.registry.get_sample_value(
        "digits_prediction_confidence_sum", {"model": "mnist"}) == pytest.approx(
        probabilities.max(axis=1).sum())
