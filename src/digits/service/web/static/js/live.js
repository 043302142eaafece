// The live panel: the service's own /metrics, read every few seconds and turned into
// rates, latency percentiles and distributions over a chosen window.

import { metricsText } from "./api.js";
import { barChart, legend, lineChart } from "./charts.js";
import {
  ReplicaWindows, bucketIncreases, histogramQuantile, increaseBy, parseExposition, perBucket,
  sumBuckets, sumBy, sumMaps,
} from "./prometheus.js";

const DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const POLL_SECONDS = 2;
const KEEP_SECONDS = 15 * 60;
// Rates and percentiles of the time series are taken over this many seconds per point
// (longer with several replicas: each is seen only every so many scrapes).
const STEP_SECONDS = 10;
const QUANTILES = [["p50", 0.5], ["p95", 0.95], ["p99", 0.99]];
const $ = (id) => document.getElementById(id);
const windows = new ReplicaWindows(KEEP_SECONDS);
const history = { rate: [], latency: QUANTILES.map(() => []) };

/** Requests per second and latency percentiles over ``spans``, all replicas together. */
function stepFigures(spans) {
  let rate = 0;
  let measured = false;
  for (const [older, newer] of spans) {
    const seconds = newer.time - older.time;
    if (seconds <= 0) continue;
    const requests = increaseBy(older.samples, newer.samples, "digits_requests_total").get("");
    rate += (requests || 0) / seconds;
    measured = true;
  }
  const buckets = sumBuckets(spans.map(([older, newer]) => bucketIncreases(
    older.samples, newer.samples, "digits_request_duration_seconds")));
  return {
    rate: measured ? rate : NaN,
    latency: QUANTILES.map(([, quantile]) => 1000 * histogramQuantile(quantile, buckets)),
  };
}

/** Increases of counter ``name`` over ``spans``, by label ``by``, all replicas together. */
function increases(spans, name, by) {
  return sumMaps(spans.map(([older, newer]) =>
    increaseBy(older.samples, newer.samples, name, {}, by)));
}

/** Per-bucket increases of histogram ``name`` over ``spans``, all replicas together. */
function distribution(spans, name) {
  return perBucket(sumBuckets(spans.map(([older, newer]) =>
    bucketIncreases(older.samples, newer.samples, name))));
}

function bucketLabel(bound, format) {
  return bound === Infinity ? "more" : format(bound);
}

function drawDistributions(spans) {
  const predicted = increases(spans, "digits_predictions_total", "label");
  // Every digit gets a bar, predicted or not (other labels after them).
  const labels = [...new Set([...DIGITS, ...predicted.keys()])].sort();
  barChart($("digits"), labels, labels.map((label) => predicted.get(label)),
    { empty: "no predictions in the window" });
  const confidence = distribution(spans, "digits_prediction_confidence");
  barChart($("confidence"), confidence.map(([bound]) => bucketLabel(bound, (v) => `≤${v}`)),
    confidence.map(([, count]) => count), { empty: "no predictions in the window" });
  const batches = distribution(spans, "digits_batch_size_images");
  barChart($("batches"), batches.map(([bound]) => bucketLabel(bound, (v) => `${v}`)),
    batches.map(([, count]) => count), { empty: "no model calls in the window" });
}

function drawVersions(samples, replicas) {
  const loaded = sumBy(samples, "digits_model_versions_loaded", {}, "model");
  const defaults = sumBy(samples, "digits_model_default_version", {}, "model");
  const items = [...loaded.keys()].sort().map((model) => {
    const labels = samples.filter((sample) => sample.name === "digits_model_version_label_info" &&
      sample.labels.model === model && sample.value === 1)
      .map((sample) => `${sample.labels.label} → v${sample.labels.version}`);
    const item = document.createElement("li");
    item.textContent = `${model}: ${loaded.get(model)} loaded, default v${defaults.get(model)}` +
      (labels.length ? `; ${labels.join(", ")}` : "");
    return item;
  });
  if (!items.length) items.push(Object.assign(document.createElement("li"),
    { textContent: "no version loaded" }));
  if (replicas > 1) items.push(Object.assign(document.createElement("li"),
    { textContent: `${replicas} replicas answering (figures add them up)` }));
  $("versions").replaceChildren(...items);
}

function draw() {
  const seconds = Number($("window").value);
  const spans = windows.spans(seconds);
  const newest = windows.latest;
  const since = newest.time - seconds;
  const recent = (points) => points.filter(([time]) => time >= since);
  lineChart($("rate"), [{ name: "requests/s", points: recent(history.rate) }]);
  lineChart($("latency"), QUANTILES.map(([name], index) =>
    ({ name, points: recent(history.latency[index]) })), { format: (value) => `${+value.toPrecision(2)} ms` });
  drawDistributions(spans);
  drawVersions(newest.samples, spans.length);
  const covered = Math.round(Math.max(...spans.map(([older]) => newest.time - older.time)));
  $("status").textContent = covered < seconds
    ? `since the page opened (${covered} s ago); updated every ${POLL_SECONDS} s`
    : `updated every ${POLL_SECONDS} s`;
}

async function poll() {
  try {
    const samples = parseExposition(await metricsText());
    const time = performance.now() / 1000;
    windows.add(time, samples);
    const step = Math.max(STEP_SECONDS, 3 * POLL_SECONDS * windows.windows.size);
    const spans = windows.spans(step).filter(([older, newer]) => older !== newer);
    if (spans.length) {
      const figures = stepFigures(spans);
      history.rate.push([time, figures.rate]);
      figures.latency.forEach((value, index) => history.latency[index].push([time, value]));
      for (const points of [history.rate, ...history.latency]) {
        while (points.length && time - points[0][0] > KEEP_SECONDS) points.shift();
      }
    }
    $("error").textContent = "";
    draw();
  } catch (error) {
    $("error").textContent = error.message;
  } finally {
    setTimeout(poll, POLL_SECONDS * 1000);
  }
}

legend($("latency-legend"), QUANTILES.map(([name]) => name));
$("window").addEventListener("change", draw);
poll();
