// Small SVG charts drawn by hand: bars for distributions, lines for time series.
// Text goes in through textContent only, so nothing from the server becomes markup.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 160;
const MARGIN = { left: 40, right: 8, top: 10, bottom: 22 };
export const SERIES_COLOURS = ["#1f6feb", "#d4a72c", "#cf222e", "#1a7f37"];

function element(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function reset(svg) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
}

/** A short tick label: 1234 -> "1.2k", 0.0123 -> "0.012". */
export function shortNumber(value) {
  const size = Math.abs(value);
  if (size >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (size >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  if (size >= 10 || size === 0) return `${Math.round(value)}`;
  return `${+value.toPrecision(2)}`;
}

/** Bars for ``values`` under ``labels``; ``highlight`` marks one bar (or -1). */
export function barChart(svg, labels, rawValues, { highlight = -1, max = null,
  format = shortNumber, tick = format, empty = "no data yet" } = {}) {
  reset(svg);
  const values = labels.map((_, index) => Number(rawValues[index]) || 0);
  const top = max ?? Math.max(0, ...values);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotWidth / Math.max(1, labels.length);
  // At most about a dozen tick labels fit under the bars.
  const labelEvery = Math.ceil(labels.length / 12);
  svg.append(element("line", { class: "axis", x1: MARGIN.left, x2: WIDTH - MARGIN.right,
    y1: MARGIN.top + plotHeight, y2: MARGIN.top + plotHeight }));
  svg.append(element("text", { x: MARGIN.left - 4, y: MARGIN.top + 8, "text-anchor": "end" },
    tick(top)));
  if (!(top > 0)) {
    svg.append(element("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle" }, empty));
  }
  labels.forEach((label, index) => {
    const value = values[index];
    const height = top > 0 ? (value / top) * plotHeight : 0;
    const x = MARGIN.left + index * slot + slot * 0.15;
    const bar = element("rect", { class: index === highlight ? "bar top" : "bar", x,
      y: MARGIN.top + plotHeight - height, width: slot * 0.7, height });
    bar.append(element("title", {}, `${label}: ${format(value)}`));
    svg.append(bar);
    if (index % labelEvery === 0) {
      svg.append(element("text", { x: x + slot * 0.35, y: HEIGHT - 6, "text-anchor": "middle" },
        label));
    }
  });
}

/** Lines of ``series`` ([{name, points: [[seconds, value], ...]}]) against time. */
export function lineChart(svg, series, { format = shortNumber, empty = "no data yet" } = {}) {
  reset(svg);
  const points = series.flatMap((line) => line.points).filter(([, value]) => isFinite(value));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  svg.append(element("line", { class: "axis", x1: MARGIN.left, x2: WIDTH - MARGIN.right,
    y1: MARGIN.top + plotHeight, y2: MARGIN.top + plotHeight }));
  if (points.length < 2) {
    svg.append(element("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle" }, empty));
    return;
  }
  const start = Math.min(...points.map(([time]) => time));
  const end = Math.max(...points.map(([time]) => time));
  const top = Math.max(...points.map(([, value]) => value)) || 1;
  const x = (time) => MARGIN.left + ((time - start) / Math.max(1e-9, end - start)) * plotWidth;
  const y = (value) => MARGIN.top + plotHeight - (value / top) * plotHeight;
  svg.append(element("text", { x: MARGIN.left - 4, y: MARGIN.top + 8, "text-anchor": "end" },
    format(top)));
  svg.append(element("text", { x: MARGIN.left - 4, y: MARGIN.top + plotHeight,
    "text-anchor": "end" }, "0"));
  svg.append(element("text", { x: MARGIN.left, y: HEIGHT - 6 },
    `${Math.round(end - start)} s`));
  svg.append(element("text", { x: WIDTH - MARGIN.right, y: HEIGHT - 6, "text-anchor": "end" },
    "now"));
  series.forEach((line, index) => {
    const finite = line.points.filter(([, value]) => isFinite(value));
    if (!finite.length) return;
    const path = finite.map(([time, value], at) =>
      `${at ? "L" : "M"}${x(time).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    const drawn = element("path", { class: "line", d: path,
      stroke: SERIES_COLOURS[index % SERIES_COLOURS.length] });
    drawn.append(element("title", {}, line.name));
    svg.append(drawn);
  });
}

/** A legend of coloured names for a line chart. */
export function legend(container, names) {
  container.replaceChildren(...names.map((name, index) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = SERIES_COLOURS[index % SERIES_COLOURS.length];
    item.append(swatch, document.createTextNode(name));
    return item;
  }));
}
