// The models page: every model and version, its state, card and training plots.

import { CALLABLE_STATES, listModels, reportFileUrl, reportText } from "./api.js";
import { barChart } from "./charts.js";

const CLASS_ACCURACY = "class_accuracy/";
const $ = (id) => document.getElementById(id);

/** A new element with text content (never parsed as markup) and attributes. */
function node(tag, text = null, attributes = {}) {
  const item = document.createElement(tag);
  if (text !== null) item.textContent = text;
  for (const [key, value] of Object.entries(attributes)) item.setAttribute(key, value);
  return item;
}

function facts(entries) {
  const list = node("dl", null, { class: "facts" });
  for (const [term, value] of entries) {
    if (value === undefined || value === null || value === "") continue;
    list.append(node("dt", term), node("dd", String(value)));
  }
  return list;
}

function percent(value) {
  return value === undefined ? "" : `${(100 * value).toFixed(2)}%`;
}

function reportFiles(card) {
  return Object.keys(card.file_sha256 || {}).filter((path) => path.startsWith("report/"))
    .map((path) => path.slice("report/".length)).sort();
}

function plotCaption(filename) {
  return filename.replace(/\.png$/, "").replaceAll("_", " ");
}

function versionSection(model, version, open) {
  const card = version.card || {};
  const section = node("details", null, { class: "version" });
  section.open = open;
  const summary = node("summary", `v${version.version} `);
  summary.append(node("span", version.state, { class: `badge state-${version.state}` }));
  if (card.test_metrics?.accuracy !== undefined) {
    summary.append(document.createTextNode(` test accuracy ${percent(card.test_metrics.accuracy)}`));
  }
  if (card.experiment) summary.append(document.createTextNode(` · ${card.experiment}`));
  section.append(summary);
  if (version.error) section.append(node("p", version.error, { class: "error" }));
  if (CALLABLE_STATES.has(version.state)) {
    section.append(node("a", "Try this version", {
      href: `./?model=${encodeURIComponent(model.name)}&version=${version.version}` }));
  }
  const gate = version.gate;
  section.append(facts([
    ["description", card.description],
    ["created", card.created],
    ["test accuracy", percent(card.test_metrics?.accuracy)],
    ["test examples", card.test_metrics?.examples],
    ["quality gate", gate?.reason],
    ["dataset", card.dataset ? `${card.dataset.source} (${card.dataset.train_examples || 0} ` +
      `training, ${card.dataset.validation_examples || 0} validation, ` +
      `${card.dataset.test_examples || 0} test images)` : ""],
    ...Object.entries(card.dataset?.array_sha256 || {}).map(([name, digest]) =>
      [`sha256 of ${name}`, digest]),
    ["frameworks", Object.entries(card.framework_versions || {})
      .map(([name, number]) => `${name} ${number}`).join(", ")],
  ]));
  const hyperparameters = card.training_config?.hyperparameters;
  if (hyperparameters) {
    section.append(node("h3", "Hyper-parameters"));
    section.append(facts(Object.entries(hyperparameters).map(([key, value]) =>
      [key, typeof value === "object" ? JSON.stringify(value) : value])));
  }
  const classes = (card.labels || []).filter((label) =>
    card.test_metrics?.[CLASS_ACCURACY + label] !== undefined);
  if (classes.length) {
    section.append(node("h3", "Test accuracy of each class"));
    const chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    chart.setAttribute("class", "chart class-accuracy");
    chart.setAttribute("role", "img");
    chart.setAttribute("aria-label", "Test accuracy of each class");
    const values = classes.map((label) => card.test_metrics[CLASS_ACCURACY + label]);
    barChart(chart, classes, values, { max: 1, format: (value) => `${(100 * value).toFixed(2)}%`,
      tick: (value) => `${Math.round(100 * value)}%` });
    section.append(chart);
  }
  const files = reportFiles(card);
  if (files.length) section.append(node("h3", "Training report"));
  const plots = node("div", null, { class: "plots" });
  for (const filename of files) {
    if (filename.endsWith(".png")) {
      const figure = node("figure");
      figure.append(node("img", null, { src: reportFileUrl(model.name, version.version, filename),
        alt: `${plotCaption(filename)} of v${version.version}`, loading: "lazy" }));
      figure.append(node("figcaption", plotCaption(filename)));
      plots.append(figure);
    } else if (filename.endsWith(".md")) {
      const table = node("pre", "loading…", { class: "table" });
      reportText(model.name, version.version, filename)
        .then((text) => { table.textContent = text; })
        .catch((error) => { table.textContent = error.message; });
      section.append(table);
    }
  }
  section.append(plots);
  return section;
}

function modelSection(model) {
  const section = node("section", null, { class: "panel model" });
  section.append(node("h2", model.name));
  const labels = Object.entries(model.version_labels || {})
    .map(([label, number]) => `${label} → v${number}`).join(", ");
  section.append(facts([
    ["default version", model.default_version ? `v${model.default_version}` : "none"],
    ["labels", labels],
    ["canary weight", model.canary_weight ? `${Math.round(100 * model.canary_weight)}%` : ""],
    ["canary halted", model.canary_halted],
  ]));
  (model.versions || []).forEach((version, index) => {
    section.append(versionSection(model, version, index === 0));
  });
  return section;
}

async function refresh() {
  $("error").textContent = "";
  try {
    const models = await listModels();
    $("models").replaceChildren(...models.map(modelSection));
    if (!models.length) $("error").textContent = "no model is loaded yet";
  } catch (error) {
    $("error").textContent = error.message;
  }
}

$("refresh").addEventListener("click", refresh);
refresh();
