/**
 * `engram-memory-client` for Node: gRPC over HTTP/2 (h2c for `http://`, TLS for `https://`).
 * Bundlers targeting browsers resolve the package to `./browser.js` (gRPC-Web) instead.
 */
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { EngramClientBase, type EngramClientOptions } from "./client.js";
import { withConnectErrors } from "./address.js";

export * from "./common.js";

/**
 * The Engram client for Node.js. Talks gRPC over one HTTP/2 connection, opened on the first call;
 * call {@link EngramClient.close} when done so that the process can exit promptly.
 *
 * ```ts
 * const client = new EngramClient({ baseUrl: "http://127.0.0.1:3300", apiKey: "..." });
 * await client.store({ agentId: "a1", content: "The user prefers dark mode" });
 * ```
 */
export class EngramClient extends EngramClientBase {
  constructor(options: EngramClientOptions = {}) {
    super(options, (baseUrl, interceptors) => {
      const sessionManager = new Http2SessionManager(baseUrl, {
        // Ping an idle connection so that a dropped one is noticed before the next call.
        pingIntervalMs: 30_000,
        pingTimeoutMs: 10_000,
      });
      const transport = createGrpcTransport({ baseUrl, sessionManager, interceptors });
      return {
        // A refused, unreachable or unresolvable server fails with UNAVAILABLE naming baseUrl.
        transport: withConnectErrors(transport, baseUrl, () => sessionManager.state() === "connecting"),
        close: () => sessionManager.abort(),
      };
    });
  }
}
