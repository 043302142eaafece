// Prometheus text exposition parsed in the browser, and the windowed figures of the live
// panel computed from two scrapes the way Prometheus would: counter increases (a reset
// restarts from zero) and histogram_quantile's linear interpolation within a bucket.

/** Parse the text format into [{name, labels, value}] (comments and timestamps dropped). */
export function parseExposition(text) {
  const samples = [];
  for (const rawLine of text.split("\n")) {
    const line = rawLine.trim();
    if (!line || line.startsWith("#")) continue;
    const brace = line.indexOf("{");
    const space = line.indexOf(" ");
    let name;
    let labels = {};
    let rest;
    if (brace !== -1 && (space === -1 || brace < space)) {
      name = line.slice(0, brace);
      const parsed = parseLabels(line, brace + 1);
      labels = parsed.labels;
      rest = line.slice(parsed.end + 1).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    samples.push({ name, labels, value: parseValue(rest.split(/\s+/)[0]) });
  }
  return samples;
}

function parseLabels(line, start) {
  const labels = {};
  let at = start;
  while (at < line.length && line[at] !== "}") {
    const equals = line.indexOf("=", at);
    const key = line.slice(at, equals).trim().replace(/^,/, "").trim();
    at = equals + 2; // past ="
    let value = "";
    while (line[at] !== '"') {
      if (line[at] === "\\") {
        const next = line[at + 1];
        value += next === "n" ? "\n" : next;
        at += 2;
      } else {
        value += line[at];
        at += 1;
      }
    }
    labels[key] = value;
    at += 1; // past the closing quote
    while (line[at] === "," || line[at] === " ") at += 1;
  }
  return { labels, end: at };
}

function parseValue(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

function matches(labels, filter) {
  return Object.entries(filter).every(([key, value]) => labels[key] === value);
}

/** Sum of the samples named ``name`` matching ``filter``, grouped by label ``by`` (or all). */
export function sumBy(samples, name, filter = {}, by = null) {
  const totals = new Map();
  for (const sample of samples) {
    if (sample.name !== name || !matches(sample.labels, filter)) continue;
    const key = by === null ? "" : sample.labels[by];
    totals.set(key, (totals.get(key) || 0) + sample.value);
  }
  return totals;
}

/** How much a counter grew from ``older`` to ``newer`` (one series; a reset means restart). */
export function increase(older, newer) {
  if (older === undefined) return newer || 0;
  return newer >= older ? newer - older : newer;
}

/** Per-series increases of counter ``name`` between two scrapes, summed by label ``by``. */
export function increaseBy(olderSamples, newerSamples, name, filter = {}, by = null) {
  const before = new Map();
  for (const sample of olderSamples) {
    if (sample.name === name) before.set(seriesKey(sample), sample.value);
  }
  const totals = new Map();
  for (const sample of newerSamples) {
    if (sample.name !== name || !matches(sample.labels, filter)) continue;
    const key = by === null ? "" : sample.labels[by];
    const grown = increase(before.get(seriesKey(sample)), sample.value);
    totals.set(key, (totals.get(key) || 0) + grown);
  }
  return totals;
}

function seriesKey(sample) {
  const keys = Object.keys(sample.labels).sort();
  return sample.name + "{" + keys.map((key) => `${key}=${sample.labels[key]}`).join(",") + "}";
}

/** Cumulative bucket increases of histogram ``name``: [[upperBound, count], ...] sorted. */
export function bucketIncreases(olderSamples, newerSamples, name, filter = {}) {
  const byBound = increaseBy(olderSamples, newerSamples, `${name}_bucket`, filter, "le");
  return [...byBound.entries()].map(([bound, count]) => [parseValue(bound), count])
    .sort((a, b) => a[0] - b[0]);
}

/** Per-bucket counts from cumulative ones: [[upperBound, count in (previous, bound]], ...]. */
export function perBucket(cumulative) {
  return cumulative.map(([bound, count], index) =>
    [bound, count - (index ? cumulative[index - 1][1] : 0)]);
}

/** Prometheus's histogram_quantile over cumulative buckets; NaN without observations. */
export function histogramQuantile(quantile, cumulative) {
  if (!cumulative.length) return NaN;
  const total = cumulative[cumulative.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = quantile * total;
  for (let index = 0; index < cumulative.length; index++) {
    const [bound, count] = cumulative[index];
    if (count >= rank) {
      if (bound === Infinity) return index ? cumulative[index - 1][0] : NaN;
      const lower = index ? cumulative[index - 1][0] : 0;
      const below = index ? cumulative[index - 1][1] : 0;
      const inBucket = count - below;
      return inBucket > 0 ? lower + (bound - lower) * ((rank - below) / inBucket) : bound;
    }
  }
  return cumulative[cumulative.length - 1][0];
}

/** Scrapes of the last ``seconds``: the oldest one still inside the window is the baseline. */
export class ScrapeWindow {
  constructor(keepSeconds) {
    this.keepSeconds = keepSeconds;
    this.scrapes = [];
  }

  add(time, samples) {
    this.scrapes.push({ time, samples });
    while (this.scrapes.length > 2 && time - this.scrapes[1].time >= this.keepSeconds) {
      this.scrapes.shift();
    }
  }

  /** [baseline, newest] for a window of ``seconds`` (the oldest kept when shorter). */
  span(seconds) {
    const newest = this.scrapes[this.scrapes.length - 1];
    const baseline = this.scrapes.find((scrape) => newest.time - scrape.time <= seconds);
    return [baseline, newest];
  }
}

/** Which server process a scrape came from (its digits_server_info labels). */
export function replicaOf(samples) {
  const info = samples.find((sample) => sample.name === "digits_server_info");
  return info ? `${info.labels.host}/${info.labels.pid}` : "";
}

/** A ScrapeWindow per replica: behind a proxy, successive scrapes of one address come
 * from different replicas, whose counters must never be subtracted from each other. */
export class ReplicaWindows {
  constructor(keepSeconds) {
    this.keepSeconds = keepSeconds;
    this.windows = new Map();
    this.latest = null;
  }

  add(time, samples) {
    const replica = replicaOf(samples);
    if (!this.windows.has(replica)) this.windows.set(replica, new ScrapeWindow(this.keepSeconds));
    this.windows.get(replica).add(time, samples);
    this.latest = { time, samples };
    for (const [key, window_] of this.windows) {
      const newest = window_.scrapes[window_.scrapes.length - 1];
      if (time - newest.time > this.keepSeconds) this.windows.delete(key);
    }
  }

  /** [baseline, newest] of every replica seen in the last ``seconds``. */
  spans(seconds) {
    return [...this.windows.values()]
      .filter((window_) => this.latest.time - window_.scrapes.at(-1).time <= seconds)
      .map((window_) => window_.span(seconds));
  }
}

/** Maps of numbers added up key by key. */
export function sumMaps(maps) {
  const total = new Map();
  for (const map of maps) {
    for (const [key, value] of map) total.set(key, (total.get(key) || 0) + value);
  }
  return total;
}

/** Cumulative bucket lists ([[bound, count], ...]) added up bound by bound. */
export function sumBuckets(lists) {
  const total = sumMaps(lists.map((list) => new Map(list)));
  return [...total.entries()].sort((a, b) => a[0] - b[0]);
}
