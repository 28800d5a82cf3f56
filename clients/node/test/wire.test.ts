// src/wire.ts is what schema/wire.schema.json makes: a schema changed
// without `npm run wire` (or a hand edit of src/wire.ts) fails here. The
// Go side is held to the same schema by internal/handlers/wire_schema_test.go,
// and the client's own types to src/wire.ts by test/types/wire.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

describe("the wire types", () => {
  it("src/wire.ts is generated from schema/wire.schema.json as it stands", () => {
    const script = fileURLToPath(new URL("../../scripts/wire-types.mjs", import.meta.url));
    const res = spawnSync(process.execPath, [script, "--check"], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
  });
});
