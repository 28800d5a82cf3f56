// The coverage floor of the client: reads the lcov report that
// `npm test` has node's test runner write (--experimental-test-coverage)
// and fails when the client's own code (build/src) is covered less than
// FLOOR. The floor is the figure measured when it was set, rounded down:
// raise it when tests are added, never lower it to let code in untested.
import { readFileSync } from "node:fs";
import { relative, resolve, sep } from "node:path";

/** Percent of build/src covered, by lines, branches and functions. */
// Set on 2026-11-29 from the memory-backend run (lines 94.52%, branches
// 86.97%, functions 95.19%); the run on every backend covers at least that.
const FLOOR = { lines: 94, branches: 86, functions: 95 };

const report = process.argv[2] ?? "build/lcov.info";
const src = resolve("build/src") + sep;
const total = { lines: [0, 0], branches: [0, 0], functions: [0, 0] };
const files = [];
let mine = false;
for (const line of readFileSync(report, "utf8").split("\n")) {
  const [key, value = ""] = line.split(/:(.*)/s);
  if (key === "SF") {
    const file = resolve(value);
    mine = file.startsWith(src);
    if (mine) files.push(relative(process.cwd(), file));
    continue;
  }
  if (!mine) continue;
  const n = Number(value);
  if (key === "LF") total.lines[0] += n;
  else if (key === "LH") total.lines[1] += n;
  else if (key === "BRF") total.branches[0] += n;
  else if (key === "BRH") total.branches[1] += n;
  else if (key === "FNF") total.functions[0] += n;
  else if (key === "FNH") total.functions[1] += n;
}
if (files.length === 0) {
  console.error(`coverage: ${report} covers no file of build/src; did the tests run with --experimental-test-coverage?`);
  process.exit(1);
}
let ok = true;
const parts = [];
for (const [kind, [found, hit]] of Object.entries(total)) {
  const pct = found === 0 ? 100 : (100 * hit) / found;
  const low = pct < FLOOR[kind];
  if (low) ok = false;
  parts.push(`${kind} ${pct.toFixed(2)}% (${hit}/${found}, floor ${FLOOR[kind]}%)${low ? " BELOW THE FLOOR" : ""}`);
}
console.log(`coverage of the client (${files.length} files of build/src): ${parts.join(", ")}`);
if (!ok) {
  console.error("coverage: below the floor in scripts/coverage.mjs; test the code you added");
  process.exit(1);
}
