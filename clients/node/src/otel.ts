import type * as OtelApi from "@opentelemetry/api";
import { CLIENT_VERSION } from "./version.js";

/**
 * OpenTelemetry, if the app has it (@opentelemetry/api is an optional peer
 * dependency): without it, jobs carry only the traceparent given to
 * enqueue, and handlers run without a span.
 */
let api: typeof OtelApi | undefined;
try {
  api = await import("@opentelemetry/api");
} catch {
  api = undefined;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The W3C traceparent of the active span, if OpenTelemetry is there and a span is active. */
export function activeTraceparent(): string | undefined {
  const sc = api?.trace.getActiveSpan()?.spanContext();
  if (!api || !sc || !api.isSpanContextValid(sc)) return undefined;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

function spanContextOf(traceparent: string | undefined): OtelApi.SpanContext | undefined {
  if (!api || !traceparent || !TRACEPARENT.test(traceparent)) return undefined;
  const [, traceId, spanId, flags] = traceparent.split("-") as [string, string, string, string];
  const sc: OtelApi.SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16) & 1, isRemote: true };
  return api.isSpanContextValid(sc) ? sc : undefined;
}

/**
 * Whether an OpenTelemetry SDK is registered. Until one is, the global
 * tracer provider is the API's proxy, whose getDelegateTracer answers
 * undefined (looked up by shape: the proxy's class is deprecated API). A
 * provider without that method is an SDK's own.
 */
function tracing(a: typeof OtelApi): boolean {
  const provider = a.trace.getTracerProvider() as { getDelegateTracer?: (name: string, version?: string) => unknown };
  return typeof provider.getDelegateTracer !== "function" || provider.getDelegateTracer("@storaged/client", CLIENT_VERSION) !== undefined;
}

/**
 * Runs fn in a consumer span for one job (OpenTelemetry's messaging
 * conventions: "<queue> process"), linked to the trace context stored
 * with the job at enqueue and, since it processes that one message, a
 * child of it, so that the enqueuing request's trace goes on into the
 * handler. Without OpenTelemetry it just runs fn.
 */
export function inJobSpan<X>(queue: string, jobId: string, attempt: number, traceparent: string | undefined, fn: () => Promise<X>): Promise<X> {
  // Without OpenTelemetry, or with its API but no SDK registered, no
  // wrapper at all: a drain runs this per job, and the no-op tracer's span,
  // context and options objects were a tenth of a no-op drain's garbage.
  if (!api || !tracing(api)) return fn();
  const a = api;
  const creation = spanContextOf(traceparent);
  const parent = creation ? a.trace.setSpanContext(a.ROOT_CONTEXT, creation) : a.ROOT_CONTEXT;
  const tracer = a.trace.getTracer("@storaged/client", CLIENT_VERSION);
  const options: OtelApi.SpanOptions = {
    kind: a.SpanKind.CONSUMER,
    attributes: {
      "messaging.system": "storaged",
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.destination.name": queue,
      "messaging.message.id": jobId,
      "storaged.job.attempt": attempt,
    },
    links: creation ? [{ context: creation }] : [],
  };
  return tracer.startActiveSpan(`${queue} process`, options, parent, async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: a.SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}
