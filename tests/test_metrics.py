"""The metrics declaration is valid Prometheus and uses the documented names; the bulk
histogram and the prediction metrics count exactly what one-by-one observation would."""

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from digits.service.bulk_histogram import BulkHistogram
from digits.service.metrics import CONFIDENCE_BUCKETS, ServiceMetrics
from digits.service.prediction_metrics import FEW_IMAGES, PredictionMetrics


def test_metrics_render_with_prometheus_names() -> None:
    metrics = ServiceMetrics()
    metrics.requests.labels(protocol="digits.v1/grpc", method="Classify", code="OK").inc()
    metrics.batch_size.labels(model="mnist").observe(8)
    text = generate_latest(metrics.registry).decode()
    assert ('digits_requests_total{code="OK",method="Classify",protocol="digits.v1/grpc"} 1.0'
            in text)
    assert 'digits_batch_size_images_bucket{le="8.0",model="mnist"} 1.0' in text


def test_each_instance_has_its_own_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.load_failures.inc()
    assert first.registry.get_sample_value("digits_model_load_failures_total") == 1
    assert second.registry.get_sample_value("digits_model_load_failures_total") == 0


def _samples(metrics: ServiceMetrics) -> list[tuple[str, list[tuple[str, str]], float]]:
    return sorted((s.name, sorted(s.labels.items()), round(s.value, 6))
                  for family in metrics.registry.collect()
                  # The process's own figures (memory, CPU) move between two collections.
                  for s in family.samples
                  if not s.name.endswith("_created") and not s.name.startswith("process_")
                  and not s.name.startswith("digits_model_calls"))  # calls, not images


def test_prediction_metrics_count_the_same_one_image_at_a_time_as_in_bulk() -> None:
    probabilities = np.random.default_rng(1).dirichlet(np.ones(10), 3 * FEW_IMAGES)
    labels = [str(digit) for digit in range(10)]
    one_at_a_time, bulk = ServiceMetrics(), ServiceMetrics()
    single = PredictionMetrics(one_at_a_time, "mnist", 1, labels)
    for row in probabilities:
        single.record(row[np.newaxis])
    PredictionMetrics(bulk, "mnist", 1, labels).record(probabilities)

    assert _samples(one_at_a_time) == _samples(bulk)
    calls = {"model": "mnist", "version": "1", "result": "ok"}
    assert one_at_a_time.registry.get_sample_value("digits_model_calls_total", calls) == len(
        probabilities)
    assert bulk.registry.get_sample_value("digits_model_calls_total", calls) == 1
    predicted = np.bincount(probabilities.argmax(axis=1), minlength=10)
    for digit in range(10):
        value = bulk.registry.get_sample_value(
            "digits_predictions_total", {"model": "mnist", "version": "1", "label": str(digit)})
        # Only predicted labels become series.
        assert value == (predicted[digit] or None)
    assert bulk.registry.get_sample_value(
        "digits_images_classified_total", {"model": "mnist", "version": "1"}) == len(
        probabilities)
    assert bulk.registry.get_sample_value(
        "digits_prediction_confidence_sum", {"model": "mnist", "version": "1"}
    ) == pytest.approx(
        probabilities.max(axis=1).sum())


def test_bulk_histogram_exports_what_histogram_observe_would() -> None:
    values = np.concatenate([np.random.default_rng(0).random(500), CONFIDENCE_BUCKETS,
                             [0.0, 1.0, 0.95 + 1e-12, 2.0]])
    registry = CollectorRegistry()
    one_by_one = Histogram("h", "test", ["model"], buckets=CONFIDENCE_BUCKETS,
                           registry=registry)
    bulk = BulkHistogram("b", "test", ["model"], CONFIDENCE_BUCKETS, registry)
    for value in values:
        one_by_one.labels(model="m").observe(float(value))
    bulk.labels(model="m").observe_many(values[:300])
    for value in values[300:]:
        bulk.labels(model="m").observe(float(value))  # the one-value path adds up the same

    def samples(prefix: str) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name[len(prefix):], s.labels, s.value) for family in registry.collect()
                for s in family.samples
                if s.name.startswith(prefix) and not s.name.endswith("_created")]

    expected, actual = samples("h"), samples("b")
    assert [s[:2] for s in actual] == [s[:2] for s in expected]
    assert [s[2] for s in actual] == pytest.approx([s[2] for s in expected])
    assert "b_bucket" in generate_latest(registry).decode()


def test_bulk_histogram_refuses_a_second_metric_of_its_name_and_wrong_labels() -> None:
    registry = CollectorRegistry()
    histogram = BulkHistogram("h", "test", ["model"], CONFIDENCE_BUCKETS, registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Histogram("h", "again", ["model"], registry=registry)
    with pytest.raises(ValueError, match="expected labels"):
        histogram.labels(version="1")
