// The service's public HTTP API (docs/serving.md), called from the same origin.

export class ApiError extends Error {}

async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(`the service did not answer (${error.message}); is it running?`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

/** Every model and its versions, with their cards (digits.v1 ListModels). */
export async function listModels() {
  const body = await call("/digits/v1/models");
  return (body && body.models) || [];
}

/** Classify one PNG or JPEG file; the answer includes the pixels the model received. */
export async function classify(model, version, fileBytes) {
  const request = { images: [{ encoded: toBase64(fileBytes) }], return_model_input: true };
  if (version) request.version = String(version);
  return call(`/digits/v1/models/${encodeURIComponent(model)}:classify?timeout=10`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
}

/** Where a version's report file (a plot or a table) is served. */
export function reportFileUrl(model, version, filename) {
  return `/digits/v1/models/${encodeURIComponent(model)}/versions/${version}/report/` +
    encodeURIComponent(filename);
}

/** The text of a report file (a table). */
export async function reportText(model, version, filename) {
  const response = await fetch(reportFileUrl(model, version, filename));
  if (!response.ok) throw new ApiError(`${filename}: ${response.status}`);
  return response.text();
}

/** The service's Prometheus metrics, as text. */
export async function metricsText() {
  let response;
  try {
    response = await fetch("/metrics", { cache: "no-store" });
  } catch (error) {
    throw new ApiError(`the service did not answer (${error.message}); is it running?`);
  }
  if (!response.ok) throw new ApiError(`/metrics: ${response.status}`);
  return response.text();
}

export function toBase64(bytes) {
  let text = "";
  for (let start = 0; start < bytes.length; start += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(start, start + 0x8000));
  }
  return btoa(text);
}

export function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** The states in which a version answers requests that pin it. */
export const CALLABLE_STATES = new Set(["AVAILABLE", "REJECTED"]);
