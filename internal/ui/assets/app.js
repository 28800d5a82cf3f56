// @ts-check
// The storaged dashboard: Preact components written with htm's tagged
// templates (no build step), routed by the URL's hash so that one
// index.html serves every page wherever it is mounted. Every figure shown
// comes from an API answer; pages poll every few seconds.
import { h, render } from "./vendor/preact.js";
import { useCallback, useEffect, useRef, useState } from "./vendor/preact-hooks.js";
import htm from "./vendor/htm.js";
import { ApiError, calls, onSession, session } from "./api.js";

const html = htm.bind(h);
const REFRESH_MS = 2000;
const STATUSES = ["pending", "processing", "completed", "failed", "cancelled"];

// ---- routing ---------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/queues";
  const [path, qs = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs) };
}

function href(parts, params) {
  const path = "#/" + parts.map(encodeURIComponent).join("/");
  const qs = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== "")).toString() : "";
  return qs ? `${path}?${qs}` : path;
}

function useRoute() {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

// ---- data ------------------------------------------------------------

/** Runs load now and every everyMs while mounted; reload() runs it at once. */
function usePoll(load, deps, everyMs = REFRESH_MS) {
  const [state, setState] = useState({ data: undefined, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    let timer;
    const run = async () => {
      try {
        const data = await load();
        if (alive) setState({ data, error: null });
      } catch (error) {
        if (alive) setState((s) => ({ data: s.data, error }));
      }
      if (alive && everyMs) timer = setTimeout(run, everyMs);
    };
    run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return [state, useCallback(() => setTick((t) => t + 1), [])];
}

/** An action button's runner: runs fn, reports its outcome in the status line. */
function useAction(announce, after) {
  const [busy, setBusy] = useState(false);
  const run = async (label, fn) => {
    setBusy(true);
    try {
      const out = await fn();
      announce({ ok: true, text: `${label}: done${out && typeof out.affected === "number" ? ` (${out.affected} job${out.affected === 1 ? "" : "s"})` : ""}` });
      if (after) after(out);
      return true;
    } catch (e) {
      announce({ ok: false, text: `${label}: ${messageOf(e)}` });
      return false;
    } finally {
      setBusy(false);
    }
  };
  return [busy, run];
}

// ---- small pieces ----------------------------------------------------

function Time({ value }) {
  if (!value) return html`<span class="muted">—</span>`;
  const d = new Date(value);
  const secs = Math.round((d.getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  const rel = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)}m` : abs < 86400 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
  return html`<time datetime=${d.toISOString()} title=${d.toISOString()}>${d.toLocaleString()} <span class="muted">(${secs <= 0 ? `${rel} ago` : `in ${rel}`})</span></time>`;
}

function duration(ms) {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

function Json({ value, label }) {
  if (value === undefined) return html`<p class="muted">none</p>`;
  return html`<pre class="json" tabindex="0" aria-label=${label}>${JSON.stringify(value, null, 2)}</pre>`;
}

/**
 * What went wrong, for a person: an API refusal with its HTTP status.
 * @param {unknown} error
 */
function messageOf(error) {
  if (error instanceof ApiError) return `${error.message} (${error.status})`;
  return error instanceof Error ? error.message : String(error);
}

function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${messageOf(error)}</p>`;
}

// Search forms are uncontrolled: Preact puts a `value` prop back into its
// field at every render, and the pages re-render at each refresh, which
// would wipe what is being typed. Each form is keyed by the URL's search,
// so that navigating (back, a link) starts it afresh from the URL.
/**
 * @param {string} value @param {string} label @param {string} current
 */
function option(value, label, current) {
  return html`<option value=${value} selected=${value === current}>${label}</option>`;
}

function Status({ value }) {
  return html`<span class=${`status status-${value}`}>${value}</span>`;
}

/** Twelve five-minute windows of the last hour as bars, with the numbers for screen readers. */
function Activity({ lastHour }) {
  if (!lastHour) return html`<span class="muted">not kept by this job queue</span>`;
  const total = (xs) => xs.reduce((a, b) => a + b, 0);
  const peak = Math.max(1, ...lastHour.completed, ...lastHour.failed);
  const done = total(lastHour.completed);
  const failed = total(lastHour.failed);
  return html`<div class="activity">
    <span class="bars" aria-hidden="true">
      ${lastHour.completed.map((c, i) => html`<span class="bar" title=${`${c} completed, ${lastHour.failed[i]} failed`}>
        <span class="bar-ok" style=${{ height: `${(c / peak) * 100}%` }}></span>
        <span class="bar-fail" style=${{ height: `${(lastHour.failed[i] / peak) * 100}%` }}></span>
      </span>`)}
    </span>
    <span>${done} completed, <span class=${failed ? "error-text" : ""}>${failed} failed</span></span>
  </div>`;
}

// ---- pages -----------------------------------------------------------

function QueuesPage({ announce }) {
  const [{ data, error }, reload] = usePoll(() => calls.queues(), []);
  const [busy, run] = useAction(announce, reload);
  return html`<section aria-labelledby="queues-h">
    <h1 id="queues-h">Queues</h1>
    <${ErrorNote} error=${error} />
    ${data === undefined ? html`<p>Loading…</p>` : data.length === 0 ? html`<p>No queues yet: a queue appears when it has jobs, settings or schedules.</p>` : html`
    <table>
      <caption>Every queue with its jobs by status and the last hour's completions and failures</caption>
      <thead><tr>
        <th scope="col">Queue</th>${STATUSES.map((s) => html`<th scope="col" class="num">${s}</th>`)}
        <th scope="col">Last hour</th><th scope="col" class="num">Schedules</th><th scope="col">State</th>
      </tr></thead>
      <tbody>${data.map((q) => html`<tr key=${q.queue} data-queue=${q.queue}>
        <th scope="row"><a href=${href(["queues", q.queue])}>${q.queue}</a></th>
        ${STATUSES.map((s) => html`<td class="num"><a href=${href(["queues", q.queue], { status: s })} aria-label=${`${q.stats[s]} ${s} jobs in ${q.queue}`}>${q.stats[s]}</a></td>`)}
        <td><${Activity} lastHour=${q.lastHour} /></td>
        <td class="num">${q.schedules}</td>
        <td>
          <span class=${q.stats.paused ? "badge paused" : "badge"}>${q.stats.paused ? "paused" : "running"}</span>
          ${!session.readOnly && q.settings ? html` <button type="button" disabled=${busy}
            onClick=${() => run(`${q.stats.paused ? "Resume" : "Pause"} ${q.queue}`, () => (q.stats.paused ? calls.resume(q.queue) : calls.pause(q.queue)))}>
            ${q.stats.paused ? "Resume" : "Pause"}<span class="sr-only"> ${q.queue}</span></button>` : null}
        </td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

// Which statuses each bulk action takes (decisions.md, issue 20).
const BULK = { retry: ["failed", "cancelled"], cancel: ["pending", "processing"], delete: ["pending", "completed", "failed", "cancelled"] };

function JobsPage({ queue, params, announce }) {
  const status = params.get("status") || "pending";
  const key = params.get("key") || "";
  const filterText = params.get("filter") || "";
  const sort = params.get("sort") || "";
  const order = params.get("order") || "";
  const after = params.get("after") || "";
  // The cursors of the pages before this one ("-" for the first), so
  // that "Previous" can go back: keyset cursors only go forward.
  const stack = (params.get("back") || "").split(",").filter(Boolean);
  const prevAfter = stack.length && stack[stack.length - 1] !== "-" ? stack[stack.length - 1] : "";
  const [filterError, setFilterError] = useState(null);
  let filter;
  try {
    filter = filterText ? JSON.parse(filterText) : undefined;
  } catch {
    filter = null;
  }
  const body = { status: [status], limit: 50 };
  if (key) body.key = key;
  if (filter) body.filter = filter;
  if (sort) body.sort = sort;
  if (order) body.order = order;
  if (after) body.after = after;
  const [{ data, error }, reload] = usePoll(() => (filter === null ? Promise.reject(new Error("the data filter is not JSON")) : calls.findJobs(queue, body)), [queue, status, key, filterText, sort, order, after]);
  const [overview] = usePoll(() => calls.queues().then((qs) => qs.find((q) => q.queue === queue)), [queue]);
  const [busy, run] = useAction(announce, reload);
  const go = (changes) => {
    location.hash = href(["queues", queue], { status, key, filter: filterText, sort, order, ...changes });
  };
  const onSubmit = (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const text = String(f.get("filter") || "").trim();
    if (text) {
      try {
        JSON.parse(text);
      } catch {
        setFilterError("The data filter must be JSON, e.g. {\"to\": \"a@example.com\"}");
        return;
      }
    }
    setFilterError(null);
    go({ status: f.get("status"), key: String(f.get("key") || "").trim(), filter: text, sort: f.get("sort"), order: f.get("order"), after: "", back: "" });
  };
  const q = overview.data;
  const bulk = (action) => {
    const what = { status: [status] };
    if (key) what.key = key;
    if (filter) what.filter = filter;
    if (!confirm(`${action} every ${status} job of ${queue}${key || filter ? " that matches the filter" : ""}?`)) return;
    run(`${action} ${status} jobs`, () => calls.bulk(queue, action, what));
  };
  return html`<section aria-labelledby="jobs-h">
    <p><a href="#/queues">← Queues</a></p>
    <h1 id="jobs-h">Queue <code>${queue}</code></h1>
    ${q ? html`<p class="summary">
      ${STATUSES.map((s) => html`<span>${s}: <strong>${q.stats[s]}</strong></span> `)}
      <span class=${q.stats.paused ? "badge paused" : "badge"}>${q.stats.paused ? "paused" : "running"}</span>
      ${!session.readOnly && q.settings ? html` <button type="button" disabled=${busy}
        onClick=${() => run(`${q.stats.paused ? "Resume" : "Pause"} ${queue}`, () => (q.stats.paused ? calls.resume(queue) : calls.pause(queue)))}>${q.stats.paused ? "Resume" : "Pause"}</button>` : null}
    </p>` : null}
    <form class="filters" key=${[status, key, filterText, sort, order].join("\n")} onSubmit=${onSubmit} aria-label="Find jobs">
      <label>Status <select name="status">${STATUSES.map((s) => option(s, s, status))}</select></label>
      <label>Key <input name="key" defaultValue=${key} placeholder="dedupe key" /></label>
      <label class="grow">Data filter (JSON) <input name="filter" defaultValue=${filterText} placeholder='{"customer": "acme"}' aria-describedby="filter-help" /></label>
      <label>Sort <select name="sort">
        ${option("", "default for the status", sort)}${option("createdAt", "createdAt", sort)}${option("runAt", "runAt", sort)}${option("finishedAt", "finishedAt", sort)}
      </select></label>
      <label>Order <select name="order">${option("", "default", order)}${option("asc", "oldest first", order)}${option("desc", "newest first", order)}</select></label>
      <button type="submit">Find</button>
      <p id="filter-help" class="help">The filter is the records' filter language over each job's data. Pending jobs sort by runAt, completed by finishedAt, the others by createdAt.</p>
    </form>
    ${filterError ? html`<p class="error" role="alert">${filterError}</p>` : null}
    <${ErrorNote} error=${error} />
    ${!session.readOnly ? html`<p class="bulk">
      ${Object.entries(BULK).filter(([, ss]) => ss.includes(status)).map(([action]) => html`<button type="button" disabled=${busy} onClick=${() => bulk(action)}>${action[0].toUpperCase() + action.slice(1)} all ${status}${key || filter ? " matching" : ""}</button> `)}
    </p>` : null}
    ${data === undefined ? html`<p>Loading…</p>` : html`
    <table class="jobs">
      <caption>${status} jobs${key ? ` with key ${key}` : ""}${filter ? " matching the filter" : ""}, ${data.jobs.length} on this page</caption>
      <thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col" class="num">Attempts</th><th scope="col">Created</th><th scope="col">Run at</th><th scope="col">Finished</th><th scope="col">Last error</th></tr></thead>
      <tbody>${data.jobs.length === 0 ? html`<tr><td colspan="7" class="muted">No ${status} jobs${after ? " on this page" : ""}.</td></tr>` : data.jobs.map((j) => html`<tr key=${j.id}>
        <th scope="row"><a href=${href(["jobs", j.id])}><code>${j.id}</code></a>${j.key ? html`<br /><span class="muted">key ${j.key}</span>` : null}</th>
        <td><${Status} value=${j.status} /></td>
        <td class="num">${j.attempts}/${j.maxAttempts}</td>
        <td><${Time} value=${j.createdAt} /></td>
        <td><${Time} value=${j.runAt} /></td>
        <td><${Time} value=${j.finishedAt} /></td>
        <td class="clip">${j.lastError ? j.lastError.message : ""}</td>
      </tr>`)}</tbody>
    </table>
    <nav class="pager" aria-label="Pages">
      ${after ? html`<a href=${href(["queues", queue], { status, key, filter: filterText, sort, order, after: prevAfter, back: stack.slice(0, -1).join(",") })}>← Previous page</a>` : null}
      ${data.next ? html`<a href=${href(["queues", queue], { status, key, filter: filterText, sort, order, after: data.next, back: [...stack, after || "-"].join(",") })}>Next page →</a>` : null}
    </nav>`}
  </section>`;
}

function timelineOf(job) {
  const items = [{ at: job.createdAt, text: "enqueued" }];
  if (job.runAt && job.runAt !== job.createdAt) items.push({ at: job.runAt, text: "due to run" });
  if (job.startedAt) items.push({ at: job.startedAt, text: `attempt ${job.attempts} started` });
  if (job.finishedAt) items.push({ at: job.finishedAt, text: job.status });
  return items.sort((a, b) => new Date(a.at).getTime() - new Date(b.at).getTime());
}

// A time as <input type="datetime-local"> shows it: local, to the second.
function localInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * Reschedules, reprioritises or rewrites the data of a pending job (PATCH
 * /v1/jobs/{id}). The fields start from the job as it was when the form
 * opened and are uncontrolled (defaultValue: Preact resets a `value` on
 * every render, and the page re-renders at each refresh), so what is being
 * typed stays; only the fields that were changed are sent.
 */
function EditJob({ job, onDone }) {
  const [initial] = useState(() => ({ runAt: localInput(job.runAt), priority: String(job.priority), data: JSON.stringify(job.data, null, 2) }));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const patch = {};
    const runAt = String(f.get("runAt") || "");
    if (runAt !== initial.runAt) {
      const d = new Date(runAt);
      if (!runAt || Number.isNaN(d.getTime())) return setError("Run at must be a date and time.");
      patch.runAt = d.toISOString();
    }
    const priority = String(f.get("priority") || "").trim();
    if (priority !== initial.priority) {
      if (!/^-?\d+$/.test(priority)) return setError("Priority must be a whole number.");
      patch.priority = Number(priority);
    }
    const data = String(f.get("data") || "");
    if (data !== initial.data) {
      try {
        patch.data = JSON.parse(data);
      } catch (err) {
        return setError(`The data must be JSON: ${messageOf(err)}`);
      }
    }
    if (Object.keys(patch).length === 0) return onDone(null);
    setBusy(true);
    try {
      await calls.patchJob(job.id, patch);
      onDone(`Saved ${Object.keys(patch).join(", ")}`);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="edit" onSubmit=${submit} aria-labelledby="edit-h">
    <h2 id="edit-h">Edit pending job</h2>
    <label>Run at <input name="runAt" type="datetime-local" step="1" defaultValue=${initial.runAt} required /></label>
    <label>Priority <input name="priority" inputmode="numeric" defaultValue=${initial.priority} aria-describedby="priority-help" /></label>
    <p id="priority-help" class="help">Higher runs first among due jobs.</p>
    <label>Data (JSON) <textarea name="data" rows="8" spellcheck="false" defaultValue=${initial.data}></textarea></label>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    <p><button type="submit" disabled=${busy}>Save</button> <button type="button" onClick=${() => onDone(null)}>Cancel editing</button></p>
  </form>`;
}

function JobPage({ id, announce }) {
  const [{ data: job, error }, reload] = usePoll(() => calls.job(id), [id]);
  const [busy, run] = useAction(announce, reload);
  const [events, setEvents] = useState([]);
  const [editing, setEditing] = useState(false);
  const queue = job ? job.queue : null;
  // Transitions seen while the page is open, from the queue's event feed
  // (which starts now and keeps each job's latest transition).
  useEffect(() => {
    if (!queue) return undefined;
    let alive = true;
    let cursor = null;
    let timer;
    const poll = async () => {
      try {
        const page = await calls.events(queue, cursor);
        cursor = page.next;
        const mine = page.events.filter((e) => e.jobId === id);
        if (alive && mine.length) setEvents((es) => [...es, ...mine]);
      } catch {
        // the job's own refresh reports errors
      }
      if (alive) timer = setTimeout(poll, REFRESH_MS);
    };
    poll();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [queue, id]);
  const prev = useRef(null);
  useEffect(() => {
    if (job && prev.current && prev.current !== job.status) announce({ ok: true, text: `Job is now ${job.status}` });
    if (job) prev.current = job.status;
  }, [job && job.status]);
  const doneEditing = (text) => {
    setEditing(false);
    if (text) {
      announce({ ok: true, text });
      reload();
    }
  };
  if (!job) return html`<section><${ErrorNote} error=${error} />${error ? null : html`<p>Loading…</p>`}</section>`;
  const del = () => {
    if (!confirm(`Delete job ${id}?`)) return;
    run("Delete", () => calls.bulk(job.queue, "delete", { ids: [id] })).then((ok) => {
      if (ok) location.hash = href(["queues", job.queue], { status: job.status });
    });
  };
  return html`<section aria-labelledby="job-h">
    <p><a href=${href(["queues", job.queue], { status: job.status })}>← Queue ${job.queue}</a></p>
    <h1 id="job-h">Job <code>${job.id}</code> <${Status} value=${job.status} /></h1>
    <${ErrorNote} error=${error} />
    ${!session.readOnly ? html`<p class="actions">
      ${job.status === "failed" || job.status === "cancelled" ? html`<button type="button" disabled=${busy} onClick=${() => run("Retry", () => calls.retry(id))}>Retry</button> ` : null}
      ${job.status === "pending" || job.status === "processing" ? html`<button type="button" disabled=${busy} onClick=${() => run("Cancel", () => calls.cancel(id))}>Cancel</button> ` : null}
      ${job.status === "pending" && !editing ? html`<button type="button" disabled=${busy} onClick=${() => setEditing(true)}>Edit</button> ` : null}
      ${job.status !== "processing" ? html`<button type="button" class="danger" disabled=${busy} onClick=${del}>Delete</button>` : null}
    </p>` : null}
    ${editing && !session.readOnly ? html`<${EditJob} job=${job} onDone=${doneEditing} />` : null}
    <div class="columns">
      <div>
        <h2>Details</h2>
        <dl class="details">
          <dt>Queue</dt><dd>${job.queue}</dd>
          <dt>Attempts</dt><dd>${job.attempts} of ${job.maxAttempts}</dd>
          <dt>Priority</dt><dd>${job.priority}</dd>
          ${job.key ? html`<dt>Key</dt><dd>${job.key}</dd>` : null}
          <dt>Created</dt><dd><${Time} value=${job.createdAt} /></dd>
          <dt>Run at</dt><dd><${Time} value=${job.runAt} /></dd>
          <dt>Started</dt><dd><${Time} value=${job.startedAt} /></dd>
          <dt>Finished</dt><dd><${Time} value=${job.finishedAt} /></dd>
          ${job.leaseExpiresAt ? html`<dt>Lease expires</dt><dd><${Time} value=${job.leaseExpiresAt} /></dd>` : null}
          ${job.timeoutMs ? html`<dt>Timeout</dt><dd>${job.timeoutMs} ms</dd>` : null}
          <dt>Backoff</dt><dd>${job.backoff.type}, ${job.backoff.delayMs} ms up to ${job.backoff.maxDelayMs} ms</dd>
        </dl>
        <h2>Timeline</h2>
        <ol class="timeline">
          ${timelineOf(job).map((t) => html`<li><${Time} value=${t.at} /> — ${t.text}</li>`)}
        </ol>
        <h3>Events while this page is open</h3>
        ${events.length === 0 ? html`<p class="muted">None yet.</p>` : html`<ol class="timeline" aria-live="polite">
          ${events.map((e) => html`<li key=${e.cursor}><${Time} value=${e.at} /> — ${e.type}${e.attempt ? ` (attempt ${e.attempt})` : ""}${e.error ? `: ${e.error.message}` : ""}</li>`)}
        </ol>`}
      </div>
      <div>
        <h2>Data</h2>
        <${Json} value=${job.data} label="Job data" />
        <h2>Last error</h2>
        ${job.lastError ? html`<div class="lasterror">
          <p class="error-text"><strong>${job.lastError.message}</strong></p>
          ${job.lastError.stack ? html`<pre class="stack" tabindex="0" aria-label="Stack trace">${job.lastError.stack}</pre>` : html`<p class="muted">no stack</p>`}
        </div>` : html`<p class="muted">none</p>`}
        <h2>Result</h2>
        <${Json} value=${job.result} label="Result" />
        <h2>Progress</h2>
        <${Json} value=${job.progress} label="Progress" />
      </div>
    </div>
  </section>`;
}

function SchedulesPage() {
  const [{ data, error }] = usePoll(async () => {
    const queues = (await calls.queues()).filter((q) => q.schedules > 0);
    const lists = await Promise.all(queues.map((q) => calls.schedules(q.queue)));
    return lists.flat();
  }, [], 5000);
  return html`<section aria-labelledby="sched-h">
    <h1 id="sched-h">Schedules</h1>
    <${ErrorNote} error=${error} />
    ${data === undefined ? html`<p>Loading…</p>` : data.length === 0 ? html`<p>No recurring schedules.</p>` : html`<table>
      <caption>Recurring schedules of every queue, with their next and last runs</caption>
      <thead><tr><th scope="col">Queue</th><th scope="col">Name</th><th scope="col">Timing</th><th scope="col">Time zone</th><th scope="col">Next run</th><th scope="col">Last run</th><th scope="col">Overlap</th></tr></thead>
      <tbody>${data.map((s) => html`<tr key=${s.queue + "/" + s.name}>
        <td><a href=${href(["queues", s.queue])}>${s.queue}</a></td>
        <th scope="row">${s.name}</th>
        <td>${s.cron ? html`<code>${s.cron}</code>` : `every ${duration(s.everyMs)}`}</td>
        <td>${s.cron ? s.tz : html`<span class="muted">—</span>`}</td>
        <td><${Time} value=${s.next} /></td>
        <td>${s.lastRunAt ? html`<${Time} value=${s.lastRunAt} />${s.lastJobId ? html` <a href=${href(["jobs", s.lastJobId])}>job</a>` : null}` : html`<span class="muted">never</span>`}</td>
        <td>${s.overlap}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

function CollectionsPage() {
  const [{ data, error }] = usePoll(() => calls.repos(), [], 5000);
  return html`<section aria-labelledby="coll-h">
    <h1 id="coll-h">Collections</h1>
    <${ErrorNote} error=${error} />
    ${data === undefined ? html`<p>Loading…</p>` : data.length === 0 ? html`<p>No collections yet.</p>` : html`<table>
      <caption>Every collection with its record count and indexes</caption>
      <thead><tr><th scope="col">Collection</th><th scope="col" class="num">Records</th><th scope="col">Indexes</th></tr></thead>
      <tbody>${data.map((c) => html`<tr key=${c.collection}>
        <th scope="row"><a href=${href(["collections", c.collection])}>${c.collection}</a></th>
        <td class="num">${c.count}</td>
        <td>${c.indexes.length === 0 ? html`<span class="muted">none</span>` : c.indexes.map((i) => html`<span class="index">${i.name} (${i.fields.join(", ")})${i.unique ? " unique" : ""}</span> `)}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

function RecordsPage({ collection, params }) {
  const filterText = params.get("filter") || "";
  const after = params.get("after") || "";
  const [filterError, setFilterError] = useState(null);
  let filter;
  try {
    filter = filterText ? JSON.parse(filterText) : undefined;
  } catch {
    filter = null;
  }
  const [{ data, error }] = usePoll(async () => {
    if (filter === null) throw new Error("the filter is not JSON");
    const body = { limit: 50, page: true };
    if (filter) body.filter = filter;
    if (after) body.after = after;
    const [page, count] = await Promise.all([calls.findRecords(collection, body), calls.countRecords(collection, filter ? { filter } : {})]);
    return { ...page, count: count.count };
  }, [collection, filterText, after], 5000);
  const onSubmit = (e) => {
    e.preventDefault();
    const text = String(new FormData(e.currentTarget).get("filter") || "").trim();
    if (text) {
      try {
        JSON.parse(text);
      } catch {
        setFilterError("The filter must be JSON, e.g. {\"status\": \"active\"}");
        return;
      }
    }
    setFilterError(null);
    location.hash = href(["collections", collection], { filter: text });
  };
  return html`<section aria-labelledby="rec-h">
    <p><a href="#/collections">← Collections</a></p>
    <h1 id="rec-h">Collection <code>${collection}</code></h1>
    <form class="filters" key=${filterText} onSubmit=${onSubmit} aria-label="Filter records">
      <label class="grow">Filter (JSON) <input name="filter" defaultValue=${filterText} placeholder='{"status": "active"}' /></label>
      <button type="submit">Filter</button>
    </form>
    ${filterError ? html`<p class="error" role="alert">${filterError}</p>` : null}
    <${ErrorNote} error=${error} />
    ${data === undefined ? html`<p>Loading…</p>` : html`
      <p>${data.count} record${data.count === 1 ? "" : "s"}${filter ? " match" : ""}.</p>
      <ul class="records">${data.items.map((r, i) => html`<li key=${r.id}><details>
        <summary><code>${r.id}</code> <span class="muted">version ${data.versions[i]}</span> <span class="clip">${JSON.stringify(r)}</span></summary>
        <${Json} value=${r} label=${`Record ${r.id}`} />
      </details></li>`)}</ul>
      <nav class="pager" aria-label="Pages">
        ${after ? html`<a href=${href(["collections", collection], { filter: filterText })}>← First page</a>` : null}
        ${data.next ? html`<a href=${href(["collections", collection], { filter: filterText, after: data.next })}>Next page →</a>` : null}
      </nav>`}
  </section>`;
}

function Login({ onDone }) {
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const token = String(new FormData(e.currentTarget).get("token") || "");
    session.setToken(token);
    try {
      await calls.queues();
      onDone();
    } catch (err) {
      session.setToken(null);
      setError(err instanceof ApiError && err.status === 401 ? "That token is not the dashboard's." : messageOf(err));
    }
  };
  return html`<section aria-labelledby="login-h" class="login">
    <h1 id="login-h">Token required</h1>
    <p>This dashboard is protected by a token (STORAGED_UI_TOKEN). It is kept in this tab only.</p>
    <form onSubmit=${submit}>
      <label>Token <input name="token" type="password" autocomplete="current-password" required autofocus /></label>
      <button type="submit">Open the dashboard</button>
    </form>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
  </section>`;
}

// ---- shell -----------------------------------------------------------

function App() {
  const route = useRoute();
  const [needToken, setNeedToken] = useState(false);
  const [, setMode] = useState(0);
  const [message, setMessage] = useState(null);
  useEffect(() => onSession((e) => (e === "unauthorized" ? setNeedToken(true) : setMode((n) => n + 1))), []);
  const announce = useCallback((m) => setMessage(m), []);
  const [top, a] = route.parts;
  let page;
  if (needToken) page = html`<${Login} onDone=${() => setNeedToken(false)} />`;
  else if (top === "queues" && a) page = html`<${JobsPage} key=${a} queue=${a} params=${route.params} announce=${announce} />`;
  else if (top === "jobs" && a) page = html`<${JobPage} key=${a} id=${a} announce=${announce} />`;
  else if (top === "schedules") page = html`<${SchedulesPage} />`;
  else if (top === "collections" && a) page = html`<${RecordsPage} key=${a} collection=${a} params=${route.params} />`;
  else if (top === "collections") page = html`<${CollectionsPage} />`;
  else page = html`<${QueuesPage} announce=${announce} />`;
  const current = (name) => (top === name || (name === "queues" && (top === "jobs" || !top)) ? "page" : undefined);
  return html`
    <header>
      <a class="brand" href="#/queues">storaged</a>
      <nav aria-label="Main"><ul>
        <li><a href="#/queues" aria-current=${current("queues")}>Queues</a></li>
        <li><a href="#/schedules" aria-current=${current("schedules")}>Schedules</a></li>
        <li><a href="#/collections" aria-current=${current("collections")}>Collections</a></li>
      </ul></nav>
      ${session.readOnly ? html`<span class="badge readonly" title="STORAGED_UI_READONLY: actions are refused">read-only</span>` : null}
      ${session.token() ? html`<button type="button" class="link" onClick=${() => { session.setToken(null); setNeedToken(true); }}>Forget token</button>` : null}
    </header>
    <div class="status-line" role="status" aria-live="polite">${message ? html`<span class=${message.ok ? "ok" : "error-text"}>${message.text}</span>` : null}</div>
    <main>${page}</main>`;
}

const root = document.getElementById("app");
if (!root) throw new Error("index.html has no #app element");
root.textContent = ""; // the "Loading" line, which render would keep
render(html`<${App} />`, root);
