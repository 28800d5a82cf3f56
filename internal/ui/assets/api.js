// @ts-check
// The dashboard's calls to the storaged API. Paths are relative (no
// leading slash) so that the pages work wherever they are mounted: at the
// root of the daemon's dashboard listener or under a Fastify prefix.

const TOKEN_KEY = "storaged-ui-token";

/** An answer of the API that is not a success, with its error body. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status
   * @param {string} code the API's error code, e.g. "conflict"
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  /** @param {string | null} t */
  setToken: (t) => (t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY)),
  // Set from every answer's Storaged-UI-Mode header.
  readOnly: false,
};

/** @typedef {"unauthorized" | "mode"} SessionEvent */

/** @type {Set<(e: SessionEvent) => void>} */
const listeners = new Set();
/**
 * Calls fn(event) on "unauthorized" and "mode" changes.
 * @param {(e: SessionEvent) => void} fn
 */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
/** @param {SessionEvent} e */
const emit = (e) => listeners.forEach((fn) => fn(e));

/**
 * One call of the API; resolves to the answer's JSON (null when empty).
 * @param {string} method
 * @param {string} path relative to the page
 * @param {unknown} [body] sent as JSON
 * @returns {Promise<any>} the API's JSON, shaped as DESIGN.md says
 */
export async function api(method, path, body) {
  // The custom header proves the call comes from these pages: another
  // site cannot send it without a CORS preflight, which is never granted.
  /** @type {Record<string, string>} */
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
/** @param {string} path */
export const get = (path) => api("GET", path);
/** @param {string} path @param {unknown} [body] */
export const post = (path, body = {}) => api("POST", path, body);

/** @typedef {Record<string, unknown>} Body a JSON request body */

export const calls = {
  queues: () => get("v1/queues"),
  /** @param {string} queue @param {Body} body */
  findJobs: (queue, body) => post(`v1/queues/${q(queue)}/jobs/find`, body),
  /** @param {string} id */
  job: (id) => get(`v1/jobs/${q(id)}`),
  /** @param {string} queue @param {string | null} [after] the cursor */
  events: (queue, after) => get(`v1/queues/${q(queue)}/events?limit=1000${after ? `&after=${q(after)}` : ""}`),
  /** @param {string} queue */
  pause: (queue) => post(`v1/queues/${q(queue)}/pause`),
  /** @param {string} queue */
  resume: (queue) => post(`v1/queues/${q(queue)}/resume`),
  /** @param {string} queue @param {"retry" | "cancel" | "delete"} action @param {Body} body */
  bulk: (queue, action, body) => post(`v1/queues/${q(queue)}/jobs/${action}`, body),
  /** @param {string} id */
  retry: (id) => post(`v1/jobs/${q(id)}/retry`),
  /** @param {string} id */
  cancel: (id) => post(`v1/jobs/${q(id)}/cancel`),
  /** @param {string} id @param {{ runAt?: string, priority?: number, data?: unknown }} body */
  patchJob: (id, body) => api("PATCH", `v1/jobs/${q(id)}`, body),
  /** @param {string} queue */
  schedules: (queue) => get(`v1/queues/${q(queue)}/schedules`),
  repos: () => get("v1/repos"),
  /** @param {string} collection @param {Body} body */
  findRecords: (collection, body) => post(`v1/repos/${q(collection)}/find`, body),
  /** @param {string} collection @param {Body} body */
  countRecords: (collection, body) => post(`v1/repos/${q(collection)}/count`, body),
};
