// IPC floor vs client calls on the memory backend (issue 6, "IPC floor").
// Usage: node ipc.mjs <socket> [iterations]
import net from "node:net";
import { SocketRepositoryBackend } from "../../clients/node/dist/index.js";

const socketPath = process.argv[2];
const N = Number(process.argv[3] ?? 5000);

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// A raw HTTP/1.1 GET /healthz on one kept-open connection.
function rawClient() {
  const sock = net.createConnection(socketPath);
  sock.setNoDelay(true);
  let pending = null;
  let buf = "";
  sock.on("data", (d) => {
    buf += d.toString("latin1");
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    const m = /content-length: (\d+)/i.exec(buf.slice(0, end));
    const len = m ? Number(m[1]) : 0;
    if (buf.length < end + 4 + len) return;
    buf = buf.slice(end + 4 + len);
    const r = pending;
    pending = null;
    r();
  });
  const req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  return {
    ready: new Promise((r) => sock.once("connect", r)),
    get: () => new Promise((r) => { pending = r; sock.write(req); }),
    close: () => sock.destroy(),
  };
}

async function timeSerial(fn, n) {
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function throughput(fn, inflight, ms) {
  let done = 0;
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (Date.now() < end) { await fn(); done++; }
  }));
  return done / (ms / 1000);
}

const raw = rawClient();
await raw.ready;
const repo = new SocketRepositoryBackend({ socketPath });
await repo.connect();
const plans = repo.repository("bench_plans");
const ids = [];
for (let i = 0; i < 1000; i++) ids.push((await plans.create({ name: `plan ${i}`, n: i })).id);

// warm up, then alternate rounds so noise hits both sides alike
for (let i = 0; i < 2000; i++) { await raw.get(); await plans.findById(ids[i % 1000]); }
const rounds = { raw: [], findById: [], create: [] };
for (let r = 0; r < 5; r++) {
  rounds.raw.push(await timeSerial(() => raw.get(), N / 5));
  rounds.findById.push(await timeSerial((i) => plans.findById(ids[i % 1000]), N / 5));
  rounds.create.push(await timeSerial((i) => plans.create({ name: `c${i}`, n: i }), N / 5));
}
const med = (xs, k) => pct(xs.map((x) => x[k]), 50);
const rawP50 = med(rounds.raw, "p50");
const out = {};
for (const k of Object.keys(rounds)) out[k] = { p50_us: med(rounds[k], "p50"), p99_us: med(rounds[k], "p99"), ratio_vs_raw: med(rounds[k], "p50") / rawP50 };
out.findById.throughput_64 = await throughput(() => plans.findById(ids[Math.floor(Math.random() * 1000)]), 64, 3000);
out.create.throughput_64 = await throughput(() => plans.create({ name: "t" }), 64, 3000);
console.log(JSON.stringify(out, null, 1));
raw.close();
await repo.disconnect();
