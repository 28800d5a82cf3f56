import { readdirSync, readFileSync, statSync } from "node:fs";
import { request } from "node:http";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { resolveSocketPath } from "./transport.js";

/**
 * Options of storagedDashboard. Register it inside a scope whose hooks
 * check your users (the dashboard shows and changes jobs and records):
 *
 *   app.register(async (admin) => {
 *     admin.addHook("onRequest", requireAdmin);
 *     await admin.register(storagedDashboard, { prefix: "/admin/storaged" });
 *   });
 */
export interface StoragedDashboardOptions {
  /** The daemon's socket; default STORAGED_SOCKET. */
  socketPath?: string;
  /** Refuse every action (pause, retry, cancel, delete, edits) with 403, as STORAGED_UI_READONLY does. */
  readOnly?: boolean;
  /** How long a proxied call may take; default 30 000 ms. */
  requestTimeoutMs?: number;
  /** The directory of the pages; default the copy this package ships. */
  assetsDir?: string;
  /** Fastify's own: where the dashboard is mounted. */
  prefix?: string;
}

/** The dashboard's headers, the same as the daemon's listener sends (internal/ui). */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const UI_HEADER = "storaged-ui";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

interface Route {
  method: string;
  path: RegExp;
  write: boolean;
}

function readAssets(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(relative(dir, p).split(sep).join("/"), readFileSync(p));
    }
  };
  walk(dir);
  if (!files.has("index.html") || !files.has("routes.json")) {
    throw new Error(`storagedDashboard: no dashboard in ${dir} (index.html and routes.json expected)`);
  }
  return files;
}

// routes.json is the daemon's list too (internal/ui): both mounts serve
// the same part of the API.
function readRoutes(json: Buffer): Route[] {
  const list = JSON.parse(json.toString("utf8")) as Array<{ method: string; path: string; write: boolean }>;
  return list.map((r) => ({
    method: r.method,
    path: new RegExp(`^${r.path.replaceAll(".", "\\.").replaceAll("{}", "[^/]+")}$`),
    write: r.write,
  }));
}

function fail(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type("application/json").send({ error: { code, message } });
}

/**
 * storagedDashboard: the storaged dashboard (the pages the daemon serves
 * on STORAGED_UI_LISTEN) inside your Fastify app, behind your own auth.
 * Its API calls go to the daemon's socket; only the routes the pages use
 * are passed on.
 */
export function storagedDashboard(fastify: FastifyInstance, options: StoragedDashboardOptions): Promise<void> {
  // Fastify takes a plugin's failure from its promise; a throw would escape it.
  try {
    mount(fastify, options);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

function mount(fastify: FastifyInstance, options: StoragedDashboardOptions): void {
  const socketPath = resolveSocketPath(options.socketPath);
  const dir = options.assetsDir ?? fileURLToPath(new URL("./ui/", import.meta.url));
  const assets = readAssets(dir);
  const routes = readRoutes(assets.get("routes.json") ?? Buffer.alloc(0));
  const readOnly = options.readOnly === true;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;

  // Bodies are passed on as they came, not parsed and encoded again. This
  // plugin is encapsulated (not fastify-plugin), so the parser stays here.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => {
    done(null, body);
  });

  fastify.addHook("onSend", async (_req, reply) => {
    void reply.header("content-security-policy", CSP);
    void reply.header("x-content-type-options", "nosniff");
    void reply.header("x-frame-options", "DENY");
    void reply.header("referrer-policy", "no-referrer");
    void reply.header("cache-control", "no-store");
    if (readOnly) void reply.header("storaged-ui-mode", "read-only");
  });

  const page = (req: FastifyRequest, reply: FastifyReply, name: string) => {
    const file = assets.get(name);
    if (!file) return fail(reply, 404, "not_found", `no such page: ${name}`);
    if (name === "index.html" && !req.url.split("?")[0]?.endsWith("/")) {
      // The pages load their files by relative URL: the mount point must end with a slash.
      return reply.redirect(`${req.url.split("?")[0] ?? ""}/`, 302);
    }
    return reply.type(TYPES[extname(name)] ?? "application/octet-stream").send(file);
  };
  fastify.get("/", (req, reply) => page(req, reply, "index.html"));
  fastify.get("/*", (req, reply) => {
    const name = (req.params as { "*": string })["*"];
    return page(req, reply, name === "" ? "index.html" : name);
  });

  fastify.route({
    method: ["GET", "POST", "PATCH", "PUT", "DELETE"],
    url: "/v1/*",
    handler: (req, reply) => {
      const path = `/v1/${(req.params as { "*": string })["*"]}`;
      const route = routes.find((r) => r.method === req.method && r.path.test(path));
      if (!route) return fail(reply, 404, "not_found", `${req.method} ${path} is not served by the dashboard`);
      // A custom header needs a CORS preflight, which is never granted:
      // another site cannot make a signed-in browser call this API.
      if (req.headers[UI_HEADER] === undefined) {
        return fail(reply, 403, "forbidden", "API calls of the dashboard need the Storaged-UI header (the pages send it)");
      }
      if (route.write && readOnly) {
        return fail(reply, 403, "forbidden", `the dashboard is read-only: ${req.method} ${path} is refused`);
      }
      const query = req.url.includes("?") ? req.url.slice(req.url.indexOf("?")) : "";
      const body = Buffer.isBuffer(req.body) ? req.body : undefined;
      return new Promise<void>((resolve) => {
        const out = request(
          {
            socketPath,
            method: req.method,
            path: path + query,
            headers: { "content-type": "application/json", ...(body ? { "content-length": body.length } : {}) },
            timeout: timeoutMs,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              void reply
                .code(res.statusCode ?? 502)
                .type(res.headers["content-type"] ?? "application/json")
                .send(Buffer.concat(chunks));
              resolve();
            });
            res.on("error", () => {
              void fail(reply, 502, "unavailable", "the daemon's answer was cut");
              resolve();
            });
          },
        );
        out.on("timeout", () => out.destroy(new Error("timeout")));
        out.on("error", (err) => {
          void fail(reply, 502, "unavailable", `storaged is not answering on ${socketPath}: ${err.message}`);
          resolve();
        });
        out.end(body);
      });
    },
  });
}
