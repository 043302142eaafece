// The "Try it" page: draw or upload a digit, see the answer and what the model saw.

import { ApiError, CALLABLE_STATES, classify, fromBase64, listModels } from "./api.js";
import { barChart } from "./charts.js";
import { Sketch } from "./sketch.js";

// Within the service's default message limit (16 MiB) once base64 adds its third.
const MAX_UPLOAD_BYTES = 8 * 1024 * 1024;
const DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

const $ = (id) => document.getElementById(id);
const modelSelect = $("model");
const versionSelect = $("version");
let models = [];
let pending = 0; // answers to ignore: only the latest request's answer is shown
let lastImage = null; // the bytes last classified, sent again when the version changes

function showError(message) {
  $("error").textContent = message;
}

function option(value, text) {
  const item = document.createElement("option");
  item.value = value;
  item.textContent = text;
  return item;
}

function fillVersions(wanted) {
  const model = models.find((entry) => entry.name === modelSelect.value);
  const labels = Object.entries(model?.version_labels || {});
  const items = [option("", `default (v${model?.default_version ?? "?"})`)];
  for (const version of model?.versions || []) {
    if (!CALLABLE_STATES.has(version.state)) continue;
    const named = labels.filter(([, number]) => String(number) === String(version.version))
      .map(([label]) => label);
    const extra = [version.state === "REJECTED" ? "rejected by the gate" : "", ...named]
      .filter(Boolean).join(", ");
    items.push(option(String(version.version), `v${version.version}${extra ? ` (${extra})` : ""}`));
  }
  versionSelect.replaceChildren(...items);
  if (wanted && items.some((item) => item.value === wanted)) versionSelect.value = wanted;
}

async function loadModels() {
  const query = new URLSearchParams(location.search);
  try {
    models = await listModels();
  } catch (error) {
    showError(error.message);
    return;
  }
  modelSelect.replaceChildren(...models.map((model) => option(model.name, model.name)));
  if (query.get("model")) modelSelect.value = query.get("model");
  fillVersions(query.get("version"));
  if (!models.length) showError("no model is loaded yet; train one (scripts/up) and reload");
}

function showAnswer(answer) {
  const prediction = answer.predictions[0];
  const probabilities = prediction.probabilities.map(Number);
  const index = prediction.class_index ?? 0;
  $("digit").textContent = prediction.label;
  $("confidence").textContent = `${(100 * (prediction.confidence ?? 0)).toFixed(1)}% confident`;
  $("answered-by").textContent = `${answer.model} v${answer.version}`;
  const labels = probabilities.length === 10 ? DIGITS : probabilities.map((_, at) => `${at}`);
  barChart($("probabilities"), labels, probabilities, { highlight: index, max: 1,
    format: (value) => `${Math.round(value * 100)}%` });
  drawPixels(fromBase64(prediction.model_input));
}

function drawPixels(pixels) {
  const canvas = $("model-input");
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  pixels.forEach((level, at) => {
    image.data.set([level, level, level, 255], at * 4);
  });
  context.putImageData(image, 0, 0);
}

function showNothing(message) {
  $("digit").textContent = "–";
  $("confidence").textContent = message;
  $("answered-by").textContent = "";
  barChart($("probabilities"), DIGITS, DIGITS.map(() => 0), { max: 1, empty: "" });
  drawPixels(new Uint8Array(784));
}

/** Classify the image ``bytes`` will hold; the result panel is busy until the latest
 * request has its answer. */
async function classifyBytes(bytes) {
  const ticket = ++pending;
  const result = $("result");
  result.setAttribute("aria-busy", "true");
  showError("");
  try {
    lastImage = await bytes;
    const answer = await classify(modelSelect.value, versionSelect.value, lastImage);
    if (ticket === pending) showAnswer(answer);
  } catch (error) {
    if (ticket === pending) showError(error instanceof ApiError ? error.message : String(error));
  } finally {
    if (ticket === pending) result.setAttribute("aria-busy", "false");
  }
}

const sketch = new Sketch($("pad"), () => {
  if (sketch.empty) {
    pending++;
    lastImage = null;
    $("result").setAttribute("aria-busy", "false");
    showNothing("draw or upload a digit");
    return;
  }
  $("photo-preview").hidden = true;
  classifyBytes(sketch.png());
});

$("undo").addEventListener("click", () => sketch.undo());
$("clear").addEventListener("click", () => sketch.clear());
$("pad").addEventListener("keydown", (event) => {
  if (event.key === "Backspace" || ((event.ctrlKey || event.metaKey) && event.key === "z")) {
    event.preventDefault();
    sketch.undo();
  } else if (event.key === "Escape" || event.key === "Delete") {
    sketch.clear();
  }
});
$("max-size").textContent = `${MAX_UPLOAD_BYTES / 1024 / 1024} MB`;
$("photo").addEventListener("change", async () => {
  const file = $("photo").files[0];
  if (!file) return;
  if (file.size > MAX_UPLOAD_BYTES) {
    showError(`${file.name} is ${(file.size / 1024 / 1024).toFixed(1)} MB; pick an image of ` +
      `at most ${MAX_UPLOAD_BYTES / 1024 / 1024} MB (a photo can be scaled down first)`);
    return;
  }
  const preview = $("photo-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  classifyBytes(file.arrayBuffer().then((buffer) => new Uint8Array(buffer)));
});
modelSelect.addEventListener("change", () => { fillVersions(null); rerun(); });
versionSelect.addEventListener("change", rerun);

function rerun() {
  if (lastImage) classifyBytes(lastImage);
}

showNothing("draw or upload a digit");
loadModels();
