// Refreshes the dashboard's vendored front-end libraries
// (internal/ui/assets/vendor) from this package's node_modules, after
// `npm install` moved preact or htm: `npm run ui:vendor`. The browser loads
// ES modules by relative URL (the CSP forbids an inline import map), so the
// bare "preact" import of the hooks module is pointed at the copy beside it.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "..", "node_modules");
const out = join(here, "..", "..", "..", "internal", "ui", "assets", "vendor");
mkdirSync(out, { recursive: true });

const version = (pkg) => JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
const noMap = (src) => src.replace(/\n?\/\/# sourceMappingURL=.*$/m, "");
const copy = (from, to, edit = (s) => s) => {
  const src = readFileSync(join(modules, from), "utf8");
  const done = edit(noMap(src));
  writeFileSync(join(out, to), done);
};

copy("preact/dist/preact.module.js", "preact.js");
copy("preact/hooks/dist/hooks.module.js", "preact-hooks.js", (s) => {
  const edited = s.replace(/from\s*"preact"/g, 'from"./preact.js"');
  if (edited === s) throw new Error("preact/hooks no longer imports \"preact\" as expected; check the vendoring");
  return edited;
});
copy("htm/dist/htm.module.js", "htm.js");
copyFileSync(join(modules, "preact", "LICENSE"), join(out, "LICENSE-preact"));
copyFileSync(join(modules, "htm", "LICENSE"), join(out, "LICENSE-htm"));
writeFileSync(join(out, "VERSIONS"), `preact ${version("preact")}\nhtm ${version("htm")}\n`);
console.log(`vendored preact ${version("preact")} and htm ${version("htm")} into ${out}`);
