// The dashboard's calls to the storaged API. Paths are relative (no
// leading slash) so that the pages work wherever they are mounted: at the
// root of the daemon's dashboard listener or under a Fastify prefix.

const TOKEN_KEY = "storaged-ui-token";

/** An answer of the API that is not a success, with its error body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  setToken: (t) => (t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY)),
  // Set from every answer's Storaged-UI-Mode header.
  readOnly: false,
};

const listeners = new Set();
/** Calls fn(event) on "unauthorized" and "mode" changes. */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
const emit = (e) => listeners.forEach((fn) => fn(e));

export async function api(method, path, body) {
  // The custom header proves the call comes from these pages: another
  // site cannot send it without a CORS preflight, which is never granted.
  const headers = { "Storaged-UI": "1" };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const readOnly = res.headers.get("Storaged-UI-Mode") === "read-only";
  if (readOnly !== session.readOnly) {
    session.readOnly = readOnly;
    emit("mode");
  }
  const text = await res.text();
  let value = null;
  if (text) {
    try {
      value = JSON.parse(text);
    } catch {
      value = null;
    }
  }
  if (!res.ok) {
    const e = (value && value.error) || {};
    if (res.status === 401) emit("unauthorized");
    throw new ApiError(res.status, e.code || "error", e.message || `${res.status} ${res.statusText}`);
  }
  return value;
}

const q = encodeURIComponent;
export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);

export const calls = {
  queues: () => get("v1/queues"),
  findJobs: (queue, body) => post(`v1/queues/${q(queue)}/jobs/find`, body),
  job: (id) => get(`v1/jobs/${q(id)}`),
  events: (queue, after) => get(`v1/queues/${q(queue)}/events?limit=1000${after ? `&after=${q(after)}` : ""}`),
  pause: (queue) => post(`v1/queues/${q(queue)}/pause`),
  resume: (queue) => post(`v1/queues/${q(queue)}/resume`),
  bulk: (queue, action, body) => post(`v1/queues/${q(queue)}/jobs/${action}`, body),
  retry: (id) => post(`v1/jobs/${q(id)}/retry`),
  cancel: (id) => post(`v1/jobs/${q(id)}/cancel`),
  patchJob: (id, body) => api("PATCH", `v1/jobs/${q(id)}`, body),
  schedules: (queue) => get(`v1/queues/${q(queue)}/schedules`),
  repos: () => get("v1/repos"),
  findRecords: (collection, body) => post(`v1/repos/${q(collection)}/find`, body),
  countRecords: (collection, body) => post(`v1/repos/${q(collection)}/count`, body),
};
