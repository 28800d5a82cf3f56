// Copies the dashboard's assets (internal/ui/assets, which the daemon
// embeds) into this package, for storagedDashboard to serve: `node
// scripts/copy-ui.mjs <dir>` (dist/ui for the package, build/src/ui for
// the tests). One copy of the pages, served by both mounts.
import { cpSync, existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const from = join(here, "..", "..", "..", "internal", "ui", "assets");
const to = resolve(process.argv[2] ?? "dist/ui");
if (!existsSync(join(from, "index.html"))) throw new Error(`no dashboard assets at ${from}`);
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
