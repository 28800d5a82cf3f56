// Shared by the dist tests: where make dist wrote the artifacts, and a
// spawn that fails loudly.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** make test-dist sets DIST_DIR; by hand, run `make dist` first. */
export const DIST = process.env["DIST_DIR"] ?? join(ROOT, "dist");
export const VERSION = readFileSync(join(ROOT, "VERSION"), "utf8").trim();

const GOARCH = { x64: "amd64", arm64: "arm64" };
export const goarch = GOARCH[process.arch] ?? process.arch;
export const npmPlatform = `${process.platform}-${process.arch}`;

/** The one artifact in DIST with this name, or a failure saying to run make dist. */
export function artifact(name) {
  const path = join(DIST, name);
  if (!existsSync(path)) {
    const have = existsSync(DIST) ? readdirSync(DIST).join(", ") : "nothing";
    throw new Error(`${path} is missing (have: ${have}); run make dist (or make test-dist)`);
  }
  return path;
}

export function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
  }
}
