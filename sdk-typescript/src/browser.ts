/**
 * `engram-memory-client` for browsers: gRPC-Web over `fetch`. The server must allow the page's
 * origin (`engram-server --cors-origins`). Client streaming (`importMemories`) needs HTTP/2 and is not
 * available here: it fails with UNIMPLEMENTED before anything is sent.
 */
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { EngramClientBase, type EngramClientOptions, type ImportMemoryInput, type ImportOptions } from "./client.js";
import { EngramError } from "./errors.js";
import { fetchWithConnectErrors } from "./address.js";
import type { ImportMemoriesResponse } from "./gen/engram/v1/request_response_pb.js";

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
  /** True when calls go through the default gRPC-Web transport (no `transport` option). */
  readonly #grpcWeb: boolean;

  constructor(options: EngramClientOptions = {}) {
    super(options, (baseUrl, interceptors) => ({
      // A failed fetch (server down, unreachable, or not allowing the origin) fails with
      // UNAVAILABLE naming baseUrl.
      transport: createGrpcWebTransport({ baseUrl, interceptors, fetch: fetchWithConnectErrors(baseUrl) }),
    }));
    this.#grpcWeb = options.transport === undefined;
  }

  /**
   * Not available over gRPC-Web: `fetch` cannot stream a request body, so the client-streaming
   * ImportMemories RPC fails with UNIMPLEMENTED (sent nothing). Import from Node instead, or give
   * a `transport` that can stream requests.
   */
  override importMemories(
    memories: Iterable<ImportMemoryInput> | AsyncIterable<ImportMemoryInput>,
    options?: ImportOptions,
  ): Promise<ImportMemoriesResponse> {
    if (this.#grpcWeb) {
      return Promise.reject(
        new EngramError("UNIMPLEMENTED", "importMemories needs client streaming, which gRPC-Web over fetch cannot send; call it from Node"),
      );
    }
    return super.importMemories(memories, options);
  }
}
