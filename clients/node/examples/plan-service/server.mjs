// Serves the plan service (app.mjs) on http://127.0.0.1:$PORT.
//   make run       # in one terminal: the daemon on ./var/storaged.sock
//   make example   # in another: this service on http://127.0.0.1:3000
import { buildApp } from "./app.mjs";

const fastify = await buildApp({ logger: true, storaged: { socketPath: process.env.STORAGED_SOCKET } });
const port = Number(process.env.PORT ?? 3000);
await fastify.listen({ port, host: "127.0.0.1" });
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => fastify.close().then(() => process.exit(0)));
}
