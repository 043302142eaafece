"""Every Prometheus metric of the service, declared in one place.

Naming follows Prometheus conventions: ``digits_`` prefix, base units, ``_total``
counters, histograms rather than summaries. The ``model`` label only ever takes names
of loaded models, so clients cannot grow the label set.
"""

import importlib.metadata
import os
import socket
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from digits.service.bulk_histogram import BulkHistogram

# Request latency from sub-millisecond single images to multi-second large batches.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


class ServiceMetrics:
    """The service's metrics, registered in ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "digits_requests",
            "Requests handled, by protocol (API and transport), method and status code.",
            ["protocol", "method", "code"], registry=r)
        self.request_duration = Histogram(
            "digits_request_duration_seconds", "Request latency, by protocol and method.",
            ["protocol", "method"], buckets=LATENCY_BUCKETS, registry=r)
        # By version too (series of unloaded versions are removed), so a canary can be
        # compared with stable.
        self.images_classified = Counter(
            "digits_images_classified", "Images classified, by model and version.",
            ["model", "version"], registry=r)
        self.predictions = Counter(
            "digits_predictions", "Predicted digits, by model, version and predicted label.",
            ["model", "version", "label"], registry=r)
        self.model_calls = Counter(
            "digits_model_calls",
            "Classify requests that reached a version's model, by model, version and result: "
            "ok, or failed (the model's fault; not the client's, a deadline or overload).",
            ["model", "version", "result"], registry=r)
        self.confidence = BulkHistogram(
            "digits_prediction_confidence",
            "Probability of the predicted class, by model and version.",
            ["model", "version"], buckets=CONFIDENCE_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "digits_batch_size_images", "Images per model call, by model.",
            ["model"], buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.queue_depth = Gauge(
            "digits_queue_depth_images", "Images waiting in the batching queue, by model.",
            ["model"], registry=r)
        self.queue_wait = Histogram(
            "digits_queue_wait_seconds", "Time a request waited for its batch to start.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference_duration = Histogram(
            "digits_inference_duration_seconds", "Model call duration per batch, by model.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        # Which process answered a scrape: behind a proxy, successive scrapes of the
        # HTTP port's /metrics may come from different replicas (the web page's live
        # panel keeps them apart by these labels).
        self.server_info = Gauge(
            "digits_server_info", "This server process (1): host name, process id and "
            "digits version.", ["host", "pid", "version"], registry=r)
        self.server_info.labels(host=socket.gethostname(), pid=str(os.getpid()),
                                version=importlib.metadata.version("digits")).set(1)
        self._declare_lifecycle(r)
        # process_open_fds, process_max_fds, process_resident_memory_bytes, ...: how
        # close the service is to its open-files limit, and its memory.
        ProcessCollector(registry=r)

    def _declare_lifecycle(self, r: CollectorRegistry) -> None:
        """The metrics of model versions coming and going: loads, the gate, scans."""
        self.loaded_versions = Gauge(
            "digits_model_versions_loaded", "Versions loaded and serving, by model.",
            ["model"], registry=r)
        self.label_info = Gauge(
            "digits_model_version_label_info",
            "1 for each version label and the version it routes to, by model (join on "
            "model and version to compare a canary with stable).",
            ["model", "label", "version"], registry=r)
        self.default_version = Gauge(
            "digits_model_default_version",
            "Version that requests without a pinned version get, by model.",
            ["model"], registry=r)
        self.load_duration = Histogram(
            "digits_model_load_duration_seconds",
            "Time to validate and load one model version.", buckets=LOAD_BUCKETS, registry=r)
        self.load_failures = Counter(
            "digits_model_load_failures",
            "Model versions that failed validation or loading.", registry=r)
        self.gate_results = Counter(
            "digits_model_gate_results",
            "Loaded versions judged by the quality gate, by model and result: passed, "
            "rejected (served only when pinned), ungated (no golden set).",
            ["model", "result"], registry=r)
        self.canary_halts = Counter(
            "digits_canary_halts",
            "Canaries this server stopped sending unpinned requests, as worse than stable, "
            "by model.", ["model"], registry=r)
        self.gate_duration = Histogram(
            "digits_model_gate_duration_seconds",
            "Time to classify the golden set with a new version and the default one.",
            buckets=LOAD_BUCKETS, registry=r)
        self.reload_duration = Histogram(
            "digits_model_reload_duration_seconds",
            "Time of one scan of the models directory, loads and unloads included.",
            buckets=LOAD_BUCKETS, registry=r)
        self.reload_failures = Counter(
            "digits_model_reload_failures",
            "Scans of the models directory that failed, by reason: unreadable, "
            "out_of_descriptors (the open-files limit), error (a bug).",
            ["reason"], registry=r)

    def batching(self, model: str) -> "BatchMetrics":
        """The batching metrics of one model, bound to its label."""
        return BatchMetrics(
            batch_size=self.batch_size.labels(model=model),
            queue_depth=self.queue_depth.labels(model=model),
            queue_wait=self.queue_wait.labels(model=model),
            inference_duration=self.inference_duration.labels(model=model),
        )


@dataclass(frozen=True)
class BatchMetrics:
    """One model's batching metrics, each child bound once: ``labels()`` on every request
    would cost a lock and a dictionary lookup."""

    batch_size: Histogram
    queue_depth: Gauge
    queue_wait: Histogram
    inference_duration: Histogram
