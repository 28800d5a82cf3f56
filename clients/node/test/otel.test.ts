// Traces across enqueue and work (issue 17): a Fastify request's span
// goes on into the handler of the job it enqueued. OpenTelemetry is set up
// in this process as an app would (a provider, an async context manager),
// with an in-memory exporter; the route's request span is made by the
// route itself (no HTTP auto-instrumentation).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { context, SpanKind, trace, type SpanContext } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import Fastify from "fastify";
import storaged, { type Job } from "../src/index.js";
import { BACKENDS, startDaemon, uniqueName, type TestDaemon } from "./harness.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracer = trace.getTracer("app");

for (const backend of BACKENDS) {
  describe(`traces across enqueue and work on ${backend}`, () => {
    let daemon: TestDaemon;
    before(async () => {
      daemon = await startDaemon(backend);
    });
    after(async () => {
      await daemon.stop();
    });

    it("runs the handler in a span that continues and links to the enqueuing request's trace", async () => {
      exporter.reset();
      const app = Fastify();
      await app.register(storaged, { socketPath: daemon.socketPath });
      const name = uniqueName("traced");
      const queue = app.jobQueue.queue<{ page: string }>(name);
      app.post("/render", async (request) =>
        tracer.startActiveSpan("POST /render", { kind: SpanKind.SERVER }, async (span) => {
          try {
            const id = await queue.enqueue(request.body as { page: string });
            return { id, traceId: span.spanContext().traceId, spanId: span.spanContext().spanId };
          } finally {
            span.end();
          }
        }),
      );
      let handled!: (v: { job: Job<{ page: string }>; active: SpanContext | undefined }) => void;
      const ran = new Promise<{ job: Job<{ page: string }>; active: SpanContext | undefined }>((r) => (handled = r));
      const worker = queue.work(async (job) => {
        handled({ job, active: trace.getActiveSpan()?.spanContext() });
      });
      const res = await app.inject({ method: "POST", url: "/render", payload: { page: "home" } });
      const req = res.json<{ id: string; traceId: string; spanId: string }>();
      const { job, active } = await ran;
      await worker.stop();
      await app.close();
      await provider.forceFlush();

      assert.equal(job.id, req.id);
      assert.equal(job.traceparent, `00-${req.traceId}-${req.spanId}-01`, "the job keeps the enqueuing span's context");
      const spans = exporter.getFinishedSpans().filter((s) => s.name === `${name} process`);
      assert.equal(spans.length, 1, `spans: ${exporter.getFinishedSpans().map((s) => s.name).join(", ")}`);
      const span = spans[0]!;
      assert.equal(span.kind, SpanKind.CONSUMER);
      assert.equal(span.attributes["messaging.message.id"], req.id);
      assert.equal(span.attributes["messaging.destination.name"], name);
      // The trace goes on: same trace, the request span its parent ...
      assert.equal(span.spanContext().traceId, req.traceId);
      assert.equal(span.parentSpanContext?.spanId, req.spanId);
      // ... and, as OpenTelemetry's messaging conventions ask, a link to it.
      assert.deepEqual(
        span.links.map((l) => [l.context.traceId, l.context.spanId]),
        [[req.traceId, req.spanId]],
      );
      // The handler ran inside that span.
      assert.equal(active?.spanId, span.spanContext().spanId);
    });
  });
}
