/**
 * Conformance shim for the TypeScript SDK: JSON Lines on stdin → `EngramClient` calls → JSON Lines.
 *
 * Built on the package's public API only (`EngramClient` from `engram-memory-client` for gRPC
 * over HTTP/2, `EngramClient` from `engram-memory-client/browser` for gRPC-Web over fetch, the
 * Node `EngramClient` given connect-node's `createConnectTransport` for Connect over HTTP/2 (binary
 * for "connect", JSON for "connect-json"), `EngramError`, the exported service descriptors for the
 * message schemas, `encodeVector`); see conformance/README.md for the
 * protocol. Each request's proto3 JSON is parsed into the request message the SDK's method takes
 * (its inputs are the API's request shapes), and each result is turned back into the RPC's
 * response message, written as proto3 JSON with the proto field names. WatchMemories, which never
 * ends, goes through `client.watch()`: the first `take` raw responses, then the loop is left.
 */
import { createInterface } from "node:readline";
import { create, fromJson, toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  AdminService,
  AgentService,
  EmbeddingService,
  EngramClient as NodeEngramClient,
  EngramError,
  MemoryService,
  encodeVector,
  type CallOptions,
  type EngramClientBase,
  type ImportMemoryInput,
} from "engram-memory-client";
import { EngramClient as BrowserEngramClient } from "engram-memory-client/browser";

/** One line from the runner. */
interface ShimRequest {
  id: number;
  url: string;
  transport: string;
  api_key?: string | null;
  rpc: string;
  request: JsonValue;
  timeout_ms?: number;
  /** Server streaming: answer the first N responses, then cancel the call (0 or absent: read to the end). */
  take?: number;
}

/** What a handler returns: one response message as JSON, or a list of them (server streaming). */
type Result = { response: JsonValue } | { responses: JsonValue[] };

type Handler = (client: EngramClientBase, request: JsonValue, options: CallOptions, take: number) => Promise<Result>;

/** A request the SDK's typed API cannot express, refused before anything is sent. */
class ClientSideError extends Error {}

/** A method descriptor's request and response schemas. */
interface MethodSchemas<I extends DescMessage, O extends DescMessage> {
  input: I;
  output: O;
}

function parse<I extends DescMessage>(schema: I, json: JsonValue): MessageShape<I> {
  try {
    return fromJson(schema, json);
  } catch (err) {
    throw new ClientSideError(`cannot parse ${schema.typeName}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function write<O extends DescMessage>(schema: O, message: MessageShape<O>): JsonValue {
  return toJson(schema, message, { useProtoFieldName: true });
}

/**
 * A unary RPC: parse the request with the method's input schema, call the SDK, and build the
 * response message from what the SDK method returns (`wrap` when it returns less than the message).
 */
function unary<I extends DescMessage, O extends DescMessage, R>(
  method: MethodSchemas<I, O>,
  call: (client: EngramClientBase, request: MessageShape<I>, options: CallOptions) => Promise<R>,
  wrap: (result: R) => MessageShape<O>,
): Handler {
  return async (client, json, options) => {
    const request = parse(method.input, json);
    return { response: write(method.output, wrap(await call(client, request, options))) };
  };
}

/** For SDK methods that return the response message itself. */
const same = <T>(value: T): T => value;

const M = MemoryService.method;
const A = AgentService.method;
const D = AdminService.method;
const E = EmbeddingService.method;

async function exportMemories(client: EngramClientBase, json: JsonValue, options: CallOptions): Promise<Result> {
  const request = parse(M.exportMemories.input, json);
  const responses: JsonValue[] = [];
  for await (const memory of client.export(request, options)) {
    responses.push(write(M.exportMemories.output, create(M.exportMemories.output, { memory })));
  }
  return { responses };
}

/**
 * WatchMemories through `client.watch()`: the raw responses (`MemoryWatch.responses()`: the
 * server's batches, heartbeats included) until `take` of them arrived, then the loop is left, which
 * cancels the call. The shim's clients have no retries, so a dropped stream is reported, not resumed.
 */
async function watchMemories(client: EngramClientBase, json: JsonValue, options: CallOptions, take: number): Promise<Result> {
  const request = parse(M.watchMemories.input, json);
  const watch = client.watch(request.agentId, {
    startAfter: request.startAfter,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.headers === undefined ? {} : { headers: options.headers }),
  });
  const responses: JsonValue[] = [];
  for await (const response of watch.responses()) {
    responses.push(write(M.watchMemories.output, response));
    if (take > 0 && responses.length >= take) {
      break;
    }
  }
  return { responses };
}

async function importMemories(client: EngramClientBase, json: JsonValue, options: CallOptions): Promise<Result> {
  if (!Array.isArray(json)) {
    throw new ClientSideError("ImportMemories takes a list of request messages");
  }
  const requests = json.map((one) => parse(M.importMemories.input, one));
  // The SDK takes the memories and one optional target agent for the whole stream.
  const agentIds = new Set(requests.map((r) => r.agentId));
  if (agentIds.size > 1) {
    throw new ClientSideError(`importMemories takes one agentId for the whole stream, got ${[...agentIds].join(", ")}`);
  }
  const [agentId] = agentIds;
  const memories: ImportMemoryInput[] = requests.map((r) => r.memory ?? {});
  const response = await client.importMemories(memories, { ...options, ...(agentId ? { agentId } : {}) });
  return { response: write(M.importMemories.output, response) };
}

const HANDLERS: Record<string, Handler> = {
  "MemoryService.StoreMemory": unary(M.storeMemory, (c, r, o) => c.store(r, o), same),
  "MemoryService.BatchStoreMemories": unary(M.batchStoreMemories, (c, r, o) => c.batchStore(r.requests, o), same),
  "MemoryService.GetMemory": unary(M.getMemory, (c, r, o) => c.get(r, o), (memory) => create(M.getMemory.output, { memory })),
  "MemoryService.UpdateMemory": unary(M.updateMemory, (c, r, o) => c.update(r, o), (memory) => create(M.updateMemory.output, { memory })),
  "MemoryService.DeleteMemory": unary(M.deleteMemory, (c, r, o) => c.delete(r, o), same),
  "MemoryService.ListMemories": unary(M.listMemories, (c, r, o) => c.list(r, o), same),
  "MemoryService.Recall": unary(M.recall, (c, r, o) => c.recall(r, o), same),
  "MemoryService.BatchRecall": unary(M.batchRecall, (c, r, o) => c.batchRecall(r.requests, o), (responses) =>
    create(M.batchRecall.output, { responses }),
  ),
  "MemoryService.ForgetMemories": unary(M.forgetMemories, (c, r, o) => c.forget(r, o), same),
  "MemoryService.GetMemoryHistory": unary(M.getMemoryHistory, (c, r, o) => c.history(r, o), (versions) =>
    create(M.getMemoryHistory.output, { versions }),
  ),
  "MemoryService.LinkMemories": unary(M.linkMemories, (c, r, o) => c.link(r, o), (link) => create(M.linkMemories.output, { link })),
  "MemoryService.UnlinkMemories": unary(M.unlinkMemories, (c, r, o) => c.unlink(r, o), same),
  "MemoryService.GetMemoryGraph": unary(M.getMemoryGraph, (c, r, o) => c.graph(r, o), same),
  "MemoryService.ConsolidateMemories": unary(M.consolidateMemories, (c, r, o) =>
    c.consolidate(r.agentId, { ...o, dryRun: r.dryRun, ...(r.similarityThreshold === undefined ? {} : { similarityThreshold: r.similarityThreshold }) }), same,
  ),
  "MemoryService.ExportMemories": exportMemories,
  "MemoryService.WatchMemories": watchMemories,
  "MemoryService.ImportMemories": importMemories,
  "AgentService.ListAgents": unary(A.listAgents, (c, r, o) => c.listAgents(r, o), same),
  "AgentService.GetAgent": unary(A.getAgent, (c, r, o) => c.getAgent(r, o), (agent) => create(A.getAgent.output, { agent })),
  "AgentService.DeleteAgent": unary(A.deleteAgent, (c, r, o) => c.deleteAgent(r, o), same),
  "AdminService.Health": unary(D.health, (c, _r, o) => c.health(o), same),
  "AdminService.GetServerInfo": unary(D.getServerInfo, (c, _r, o) => c.serverInfo(o), same),
  "AdminService.GetStats": unary(D.getStats, (c, _r, o) => c.stats(o), same),
  "AdminService.CreateApiKey": unary(D.createApiKey, (c, r, o) => c.createApiKey(r, o), same),
  "AdminService.ListApiKeys": unary(D.listApiKeys, (c, r, o) => c.listApiKeys(r, o), (apiKeys) =>
    create(D.listApiKeys.output, { apiKeys }),
  ),
  "AdminService.RevokeApiKey": unary(D.revokeApiKey, (c, r, o) => c.revokeApiKey(r, o), (apiKey) =>
    create(D.revokeApiKey.output, { apiKey }),
  ),
  "AdminService.GetClusterStatus": unary(D.getClusterStatus, (c, _r, o) => c.clusterStatus(o), same),
  "AdminService.DrainClusterNode": unary(D.drainClusterNode, (c, r, o) => c.drainClusterNode(r.nodeId, o), same),
  // embed() decodes the packed float32 vectors; encode them again for the wire-shaped response.
  "EmbeddingService.Embed": unary(E.embed, (c, r, o) => c.embed(r, o), (result) =>
    create(E.embed.output, {
      embeddings: result.vectors.map((v) => ({ vector: encodeVector(v) })),
      model: result.model,
      dimensions: result.dimensions,
    }),
  ),
};

/** The HTTP/2 connections of the Connect transports, closed when stdin ends. */
const sessions: Http2SessionManager[] = [];

/** A Connect transport over HTTP/2 (client streaming needs it), binary or JSON. */
function connectClient(url: string, apiKey: string, useBinaryFormat: boolean): EngramClientBase {
  const sessionManager = new Http2SessionManager(url);
  sessions.push(sessionManager);
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager, useBinaryFormat });
  return new NodeEngramClient({ transport, apiKey, retries: 0 });
}

function newClient(url: string, transport: string, apiKey: string): EngramClientBase {
  // No retries: the suite checks what one call answers.
  const options = { baseUrl: url, apiKey, retries: 0 };
  switch (transport) {
    case "grpc":
      return new NodeEngramClient(options);
    case "grpc-web":
      return new BrowserEngramClient(options);
    case "connect":
      return connectClient(url, apiKey, true);
    case "connect-json":
      return connectClient(url, apiKey, false);
    default:
      throw new Error(`unknown transport ${transport}`);
  }
}

async function handle(clients: Map<string, EngramClientBase>, msg: ShimRequest): Promise<Record<string, unknown>> {
  const apiKey = msg.api_key ?? "";
  const key = JSON.stringify([msg.url, msg.transport, apiKey]);
  let client = clients.get(key);
  if (client === undefined) {
    client = newClient(msg.url, msg.transport, apiKey);
    clients.set(key, client);
  }
  const handler = HANDLERS[msg.rpc];
  if (handler === undefined) {
    return { id: msg.id, error: { code: "UNIMPLEMENTED", message: `shim: no handler for ${msg.rpc}` } };
  }
  const options: CallOptions = msg.timeout_ms ? { timeoutMs: msg.timeout_ms } : {};
  try {
    return { id: msg.id, ...(await handler(client, msg.request, options, msg.take ?? 0)) };
  } catch (err) {
    if (err instanceof EngramError) {
      return { id: msg.id, error: { code: err.code, message: err.message } };
    }
    if (err instanceof ClientSideError || err instanceof RangeError) {
      // The request could not be expressed, or the SDK refused the arguments before sending.
      return { id: msg.id, error: { code: "INVALID_ARGUMENT", message: `client-side: ${err.message}` } };
    }
    // Anything else is a bug in the shim or the SDK: report it so that the case fails loudly.
    return { id: msg.id, error: { code: "INTERNAL", message: `shim: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` } };
  }
}

async function main(): Promise<void> {
  const clients = new Map<string, EngramClientBase>();
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === "") {
      continue;
    }
    const reply = await handle(clients, JSON.parse(line) as ShimRequest);
    process.stdout.write(JSON.stringify(reply) + "\n");
  }
  for (const client of clients.values()) {
    client.close();
  }
  for (const session of sessions) {
    session.abort();
  }
}

await main();
