/**
 * `@engram/client` for browsers: gRPC-Web over `fetch`. The server must allow the page's origin
 * (`engram-server --cors-origins`). Client streaming (`importMemories`) needs HTTP/2 and is not
 * available here.
 */
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { EngramClientBase, type EngramClientOptions } from "./client.js";

export * from "./common.js";

/**
 * The Engram client for browsers (gRPC-Web).
 *
 * ```ts
 * const client = new EngramClient({ baseUrl: "https://engram.example.com", apiKey: "..." });
 * const { memories } = await client.recall({ agentId: "a1", query: "theme" });
 * ```
 */
export class EngramClient extends EngramClientBase {
  constructor(options: EngramClientOptions = {}) {
    super(options, (baseUrl, interceptors) => ({
      transport: createGrpcWebTransport({ baseUrl, interceptors }),
    }));
  }
}
