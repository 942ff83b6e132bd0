/**
 * The transport-independent Engram client. The entry points (`index.ts` for Node,
 * `browser.ts` for browsers) subclass it with their default transport.
 */
import { createClient, type CallOptions as ConnectCallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AdminService, AgentService, EmbeddingService, MemoryService } from "./gen/engram/v1/service_pb.js";
import type {
  BatchStoreMemoriesResponse,
  ConsolidateMemoriesResponse,
  CreateApiKeyRequestSchema,
  CreateApiKeyResponse,
  DeleteAgentRequestSchema,
  DeleteAgentResponse,
  DeleteMemoryRequestSchema,
  DeleteMemoryResponse,
  DrainClusterNodeResponse,
  EmbedRequestSchema,
  ExportMemoriesRequestSchema,
  ForgetMemoriesRequestSchema,
  ForgetMemoriesResponse,
  GetAgentRequestSchema,
  GetClusterStatusResponse,
  GetMemoryGraphRequestSchema,
  GetMemoryGraphResponse,
  GetMemoryHistoryRequestSchema,
  GetMemoryRequestSchema,
  GetServerInfoResponse,
  GetStatsResponse,
  HealthResponse,
  ImportMemoriesRequestSchema,
  ImportMemoriesResponse,
  LinkMemoriesRequestSchema,
  ListAgentsRequestSchema,
  ListAgentsResponse,
  ListApiKeysRequestSchema,
  ListMemoriesRequestSchema,
  ListMemoriesResponse,
  RecallRequestSchema,
  RecallResponse,
  RevokeApiKeyRequestSchema,
  StoreMemoryRequestSchema,
  StoreMemoryResponse,
  UnlinkMemoriesRequestSchema,
  UnlinkMemoriesResponse,
  UpdateMemoryRequestSchema,
} from "./gen/engram/v1/request_response_pb.js";
import type { Agent, ApiKey, Memory, MemoryLink, MemorySchema } from "./gen/engram/v1/messages_pb.js";
import { EngramError, toEngramError } from "./errors.js";
import { decodeVector } from "./vectors.js";
import { headersInterceptor, withHeaders } from "./interceptors.js";
import { normalizeBaseUrl } from "./address.js";
import { MemoryWatch, backoffDelay, sleep, type WatchOptions } from "./watch.js";

export { DEFAULT_BASE_URL } from "./address.js";
/** Default deadline of a unary call, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Default number of retries of an idempotent call that failed with UNAVAILABLE. */
export const DEFAULT_RETRIES = 2;
/** Default backoff between retries: the n-th waits a random time up to min(maxMs, initialMs * multiplier^n). */
export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>> = Object.freeze({ initialMs: 100, maxMs: 2_000, multiplier: 2 });

/** Exponential backoff with full jitter between retries. */
export interface BackoffOptions {
  /** First delay cap, in milliseconds. Default 100. */
  initialMs?: number;
  /** Largest delay cap, in milliseconds. Default 2000. */
  maxMs?: number;
  /** Growth of the cap per retry. Default 2. */
  multiplier?: number;
}

/** Options of {@link EngramClient}. */
export interface EngramClientOptions {
  /**
   * Server address: `host:port`, `http://host:port`, `https://host:port` (TLS), `grpc://host:port` or
   * `grpcs://host:port` (the same as http/https), with or without a trailing slash; IPv6 hosts in
   * brackets (`[::1]:3300`). Without a port: 3300 (443 for https). Default
   * {@link DEFAULT_BASE_URL}, `http://127.0.0.1:3300`. Ignored when `transport` is given.
   */
  baseUrl?: string;
  /** API key, sent as `authorization: Bearer <key>` on every call. Default: none. */
  apiKey?: string;
  /** Deadline of each unary call in milliseconds, retries included; 0 disables it. Default 30000. Streams have no default deadline. */
  timeoutMs?: number;
  /** Retries of idempotent calls that fail with UNAVAILABLE. Default 2. 0 disables retries. */
  retries?: number;
  /** Backoff between retries. Default {@link DEFAULT_BACKOFF}. */
  backoff?: BackoffOptions;
  /** Extra headers sent with every call. */
  headers?: Record<string, string>;
  /** A Connect transport to use instead of the default one (gRPC over HTTP/2 on Node, gRPC-Web in browsers). */
  transport?: Transport;
}

/** Options of one call. */
export interface CallOptions {
  /** Aborts the call (it fails with CANCELLED). */
  signal?: AbortSignal;
  /** Deadline of this call in milliseconds, retries included; overrides the client's `timeoutMs`. 0 disables it. */
  timeoutMs?: number;
  /** Retries for this call (only idempotent calls are ever retried); overrides the client's `retries`. */
  retries?: number;
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

/** Options of {@link EngramClientBase.importMemories}. */
export interface ImportOptions extends CallOptions {
  /** Import every memory into this agent instead of its own `agentId`. */
  agentId?: string;
}

/** Options of {@link EngramClientBase.consolidate}. */
export interface ConsolidateOptions extends CallOptions {
  /** Only list the groups of near-duplicates; merge nothing (needs only a read key). Default false. */
  dryRun?: boolean;
  /**
   * The cosine similarity, from 0.5 to 1, from which two memories are duplicates. Default: the
   * server's `duplicate_threshold` (0.95 unless configured).
   */
  similarityThreshold?: number;
}

/** The result of {@link EngramClientBase.embed}. */
export interface EmbedResult {
  /** One L2-normalised vector per text, in request order. */
  vectors: Float32Array[];
  /** The embedding model that made them. */
  model: string;
  /** Dimensions of each vector. */
  dimensions: number;
}

export type StoreMemoryInput = MessageInitShape<typeof StoreMemoryRequestSchema>;
export type GetMemoryInput = MessageInitShape<typeof GetMemoryRequestSchema>;
export type UpdateMemoryInput = MessageInitShape<typeof UpdateMemoryRequestSchema>;
export type DeleteMemoryInput = MessageInitShape<typeof DeleteMemoryRequestSchema>;
export type ListMemoriesInput = MessageInitShape<typeof ListMemoriesRequestSchema>;
export type RecallInput = MessageInitShape<typeof RecallRequestSchema>;
export type ForgetMemoriesInput = MessageInitShape<typeof ForgetMemoriesRequestSchema>;
export type GetMemoryHistoryInput = MessageInitShape<typeof GetMemoryHistoryRequestSchema>;
export type LinkMemoriesInput = MessageInitShape<typeof LinkMemoriesRequestSchema>;
export type UnlinkMemoriesInput = MessageInitShape<typeof UnlinkMemoriesRequestSchema>;
export type GetMemoryGraphInput = MessageInitShape<typeof GetMemoryGraphRequestSchema>;
export type ExportMemoriesInput = MessageInitShape<typeof ExportMemoriesRequestSchema>;
export type ImportMemoryInput = MessageInitShape<typeof MemorySchema>;
export type ListAgentsInput = MessageInitShape<typeof ListAgentsRequestSchema>;
export type GetAgentInput = MessageInitShape<typeof GetAgentRequestSchema>;
export type DeleteAgentInput = MessageInitShape<typeof DeleteAgentRequestSchema>;
export type CreateApiKeyInput = MessageInitShape<typeof CreateApiKeyRequestSchema>;
export type ListApiKeysInput = MessageInitShape<typeof ListApiKeysRequestSchema>;
export type RevokeApiKeyInput = MessageInitShape<typeof RevokeApiKeyRequestSchema>;
export type EmbedInput = MessageInitShape<typeof EmbedRequestSchema>;

/** The generated Connect clients, one per service: an escape hatch to the raw API. */
export interface EngramServices {
  memory: Client<typeof MemoryService>;
  agent: Client<typeof AgentService>;
  admin: Client<typeof AdminService>;
  embedding: Client<typeof EmbeddingService>;
}

/** Builds the default transport of an entry point (Node or browser) for a normalised address. */
export type TransportFactory = (baseUrl: string, interceptors: Interceptor[]) => { transport: Transport; close?: () => void };

/**
 * The Engram client: one async method per RPC of the v1 API.
 *
 * Every method takes an optional {@link CallOptions} last and throws {@link EngramError}.
 * Idempotent calls are retried on UNAVAILABLE with exponential backoff and jitter; `store` and
 * `batchStore` only when every memory has a client-chosen `id` or an upsert `key` (a repeat then
 * changes nothing more). {@link EngramClientBase.watch} reconnects with the same settings.
 */
export class EngramClientBase {
  /** The generated Connect clients, for calls this class does not wrap. */
  readonly services: EngramServices;
  /** The normalised server address (`"127.0.0.1:3300"` becomes `http://127.0.0.1:3300`); undefined with a `transport` option. */
  readonly baseUrl: string | undefined;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #close: (() => void) | undefined;

  protected constructor(options: EngramClientOptions, defaultTransport: TransportFactory) {
    const headers: Record<string, string> = { ...options.headers };
    if (options.apiKey !== undefined && options.apiKey !== "") {
      headers["authorization"] = `Bearer ${options.apiKey}`;
    }
    let transport: Transport;
    if (options.transport !== undefined) {
      transport = withHeaders(options.transport, headers);
    } else {
      this.baseUrl = normalizeBaseUrl(options.baseUrl);
      const made = defaultTransport(this.baseUrl, [headersInterceptor(headers)]);
      transport = made.transport;
      this.#close = made.close;
    }
    this.services = {
      memory: createClient(MemoryService, transport),
      agent: createClient(AgentService, transport),
      admin: createClient(AdminService, transport),
      embedding: createClient(EmbeddingService, transport),
    };
    this.#timeoutMs = nonNegative("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.#retries = nonNegative("retries", options.retries ?? DEFAULT_RETRIES);
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  }

  /** Releases the connection of the default transport. Calls made afterwards open a new one. */
  close(): void {
    this.#close?.();
  }

  // ---------------------------------------------------------------------------------------------
  // MemoryService
  // ---------------------------------------------------------------------------------------------

  /**
   * Stores one memory. The response's `outcome` says what the store did: `StoreOutcome.CREATED` (a
   * new memory), `UNCHANGED` (a repeat of a client-chosen `id`), `MERGED` (a duplicate, per
   * `duplicatePolicy`, merged into the agent's existing memory, returned) or `REPLACED` (the
   * agent's memory with this `key` was replaced).
   *
   * Besides the memory's fields, the request may set `key` (an upsert key: the agent's memory with
   * this key is replaced, keeping its id; exclusive with `id`), `duplicatePolicy`
   * (`DuplicatePolicy.OFF`, `EXACT`, `NEAR`; default: the server's, `EXACT`) and
   * `duplicateThreshold` (the cosine similarity from which `NEAR` merges, 0.5 to 1; default 0.95).
   *
   * Retried on UNAVAILABLE only when `id` or `key` is set (a repeat then changes nothing more).
   */
  store(request: StoreMemoryInput, options?: CallOptions): Promise<StoreMemoryResponse> {
    return this.#unary((o) => this.services.memory.storeMemory(request, o), retrySafe(request), options);
  }

  /**
   * Stores many memories of one agent, all or nothing. Each request takes the same fields as
   * {@link EngramClientBase.store}; the response's `outcomes` has one `StoreOutcome` per request,
   * in order. Retried only when every request has an `id` or a `key`.
   */
  batchStore(requests: StoreMemoryInput[], options?: CallOptions): Promise<BatchStoreMemoriesResponse> {
    const idempotent = requests.length > 0 && requests.every(retrySafe);
    return this.#unary((o) => this.services.memory.batchStoreMemories({ requests }, o), idempotent, options);
  }

  /** Gets one memory by id. */
  async get(request: string | GetMemoryInput, options?: CallOptions): Promise<Memory> {
    const req = typeof request === "string" ? { id: request } : request;
    const res = await this.#unary((o) => this.services.memory.getMemory(req, o), true, options);
    return required(res.memory, "memory");
  }

  /** Updates fields of a memory (`memory.id` names it) and returns it with its new version. Not retried. */
  async update(request: UpdateMemoryInput, options?: CallOptions): Promise<Memory> {
    const res = await this.#unary((o) => this.services.memory.updateMemory(request, o), false, options);
    return required(res.memory, "memory");
  }

  /** Deletes a memory with its vector, links and history. */
  delete(request: string | DeleteMemoryInput, options?: CallOptions): Promise<DeleteMemoryResponse> {
    const req = typeof request === "string" ? { id: request } : request;
    return this.#unary((o) => this.services.memory.deleteMemory(req, o), true, options);
  }

  /** Lists one page of an agent's memories; see {@link iterMemories} to walk every page. */
  list(request: ListMemoriesInput, options?: CallOptions): Promise<ListMemoriesResponse> {
    return this.#unary((o) => this.services.memory.listMemories(request, o), true, options);
  }

  /** Yields every memory matching the request, fetching page after page. */
  async *iterMemories(request: ListMemoriesInput, options?: CallOptions): AsyncGenerator<Memory, void, undefined> {
    let pageToken = request.pageToken ?? "";
    do {
      const page = await this.list({ ...request, pageToken }, options);
      yield* page.memories;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /** Finds the memories most relevant to a query. */
  recall(request: RecallInput, options?: CallOptions): Promise<RecallResponse> {
    return this.#unary((o) => this.services.memory.recall(request, o), true, options);
  }

  /** Runs several recalls in one call; one response per request, in order. */
  async batchRecall(requests: RecallInput[], options?: CallOptions): Promise<RecallResponse[]> {
    const res = await this.#unary((o) => this.services.memory.batchRecall({ requests }, o), true, options);
    return res.responses;
  }

  /** Deletes every memory of an agent matching a non-empty filter; `dryRun` only counts. Retried only on a dry run. */
  forget(request: ForgetMemoriesInput, options?: CallOptions): Promise<ForgetMemoriesResponse> {
    return this.#unary((o) => this.services.memory.forgetMemories(request, o), request.dryRun === true, options);
  }

  /** Every version of a memory, oldest first. */
  async history(request: string | GetMemoryHistoryInput, options?: CallOptions): Promise<Memory[]> {
    const req = typeof request === "string" ? { id: request } : request;
    const res = await this.#unary((o) => this.services.memory.getMemoryHistory(req, o), true, options);
    return res.versions;
  }

  /** Links two memories of an agent. Not retried. */
  async link(request: LinkMemoriesInput, options?: CallOptions): Promise<MemoryLink> {
    const res = await this.#unary((o) => this.services.memory.linkMemories(request, o), false, options);
    return required(res.link, "link");
  }

  /** Removes links between two memories. */
  unlink(request: UnlinkMemoriesInput, options?: CallOptions): Promise<UnlinkMemoriesResponse> {
    return this.#unary((o) => this.services.memory.unlinkMemories(request, o), true, options);
  }

  /** The memories reachable from one memory by following links, with the links between them. */
  graph(request: GetMemoryGraphInput, options?: CallOptions): Promise<GetMemoryGraphResponse> {
    return this.#unary((o) => this.services.memory.getMemoryGraph(request, o), true, options);
  }

  /**
   * Finds groups of near-duplicate memories of an agent and merges each group into its most
   * important (then oldest) memory: the others are deleted, their text and versions kept in its
   * history, their links moved to it. With `dryRun` the groups are only listed (a read key is
   * enough); merging needs a write key. Retried on UNAVAILABLE only on a dry run.
   *
   * ```ts
   * const { groups } = await client.consolidate("a1", { dryRun: true, similarityThreshold: 0.9 });
   * ```
   */
  consolidate(agentId: string, options: ConsolidateOptions = {}): Promise<ConsolidateMemoriesResponse> {
    const { dryRun = false, similarityThreshold, ...callOptions } = options;
    const request = { agentId, dryRun, ...(similarityThreshold === undefined ? {} : { similarityThreshold }) };
    return this.#unary((o) => this.services.memory.consolidateMemories(request, o), dryRun, callOptions);
  }

  /**
   * Watches the changes to memories (MemoryService.WatchMemories): of one agent, or with no
   * `agentId` (or `""`) of every agent the API key may access. Returns a {@link MemoryWatch}, an
   * `AsyncIterable<MemoryEvent>` to read with `for await`; the call starts with the loop. It never
   * ends on its own: leave the loop (`break`) or abort `options.signal` to stop it.
   *
   * A dropped stream (the connection lost, the server restarting, `UNAVAILABLE`) is resumed after
   * the last event's cursor, with the client's `retries` and `backoff` (or the watch's own) between
   * reconnections that fail in a row: no event is missed or repeated. A cursor older than the
   * server's retained changes throws an {@link EngramError} of code `OUT_OF_RANGE`.
   *
   * ```ts
   * const watch = client.watch("a1", { startAfter: "0" }); // "0": every retained change
   * for await (const event of watch) {
   *   console.log(event.type, event.memoryId);
   *   if (event.memoryId === lastId) break;
   * }
   * const resumeFrom = watch.cursor;
   * ```
   *
   * @throws {EngramError} `INVALID_ARGUMENT` at once for a non-string `agentId` or `startAfter`, or
   * a `retries` that is not a number >= 0.
   */
  watch(agentId: string = "", options: WatchOptions = {}): MemoryWatch {
    if (typeof agentId !== "string") {
      throw new EngramError("INVALID_ARGUMENT", `watch: agentId must be a string, got ${typeof agentId}`);
    }
    if (options.startAfter !== undefined && typeof options.startAfter !== "string") {
      throw new EngramError("INVALID_ARGUMENT", `watch: startAfter must be a cursor string, got ${typeof options.startAfter}`);
    }
    const retries = options.retries ?? this.#retries;
    if (typeof retries !== "number" || Number.isNaN(retries) || retries < 0) {
      throw new EngramError("INVALID_ARGUMENT", `watch: retries must be a number >= 0 (Infinity: never give up), got ${String(retries)}`);
    }
    const policy = { retries, backoff: { ...this.#backoff, ...definedOnly(options.backoff) } };
    return new MemoryWatch(agentId, options, policy, (request, callOptions) => this.services.memory.watchMemories(request, callOptions));
  }

  /**
   * Streams every memory of an agent (server streaming). Retried on UNAVAILABLE only before the
   * first memory arrives. No deadline unless `options.timeoutMs` is given.
   */
  async *export(request: string | ExportMemoriesInput, options?: CallOptions): AsyncGenerator<Memory, void, undefined> {
    const req = typeof request === "string" ? { agentId: request } : request;
    const maxRetries = options?.retries ?? this.#retries;
    const timeoutMs = options?.timeoutMs ?? 0;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : undefined;
    for (let attempt = 0; ; attempt++) {
      let received = false;
      try {
        const stream = this.services.memory.exportMemories(req, connectOptions(options, deadline));
        for await (const res of stream) {
          received = true;
          if (res.memory !== undefined) {
            yield res.memory;
          }
        }
        return;
      } catch (reason) {
        const err = toEngramError(reason);
        if (received || !(await this.#shouldRetry(err, attempt, maxRetries, deadline, options?.signal))) {
          throw err;
        }
      }
    }
  }

  /**
   * Imports memories as exported (client streaming), keeping ids, times and versions; memories
   * whose id exists are skipped. Not retried (the source may be consumed), but safe to run again.
   * Needs HTTP/2: not available over gRPC-Web in browsers.
   */
  importMemories(
    memories: Iterable<ImportMemoryInput> | AsyncIterable<ImportMemoryInput>,
    options?: ImportOptions,
  ): Promise<ImportMemoriesResponse> {
    const agentId = options?.agentId ?? "";
    async function* requests(): AsyncGenerator<MessageInitShape<typeof ImportMemoriesRequestSchema>> {
      for await (const memory of memories) {
        yield { memory, agentId };
      }
    }
    // Like export, an import has no deadline unless the call sets one.
    const callOptions: CallOptions = { ...options, timeoutMs: options?.timeoutMs ?? 0 };
    return this.#unary((o) => this.services.memory.importMemories(requests(), o), false, callOptions);
  }

  // ---------------------------------------------------------------------------------------------
  // AgentService
  // ---------------------------------------------------------------------------------------------

  /** Lists one page of agents. */
  listAgents(request: ListAgentsInput = {}, options?: CallOptions): Promise<ListAgentsResponse> {
    return this.#unary((o) => this.services.agent.listAgents(request, o), true, options);
  }

  /** Yields every agent, fetching page after page. */
  async *iterAgents(request: ListAgentsInput = {}, options?: CallOptions): AsyncGenerator<Agent, void, undefined> {
    let pageToken = request.pageToken ?? "";
    do {
      const page = await this.listAgents({ ...request, pageToken }, options);
      yield* page.agents;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /** Gets one agent with its counts, sizes and last activity. */
  async getAgent(request: string | GetAgentInput, options?: CallOptions): Promise<Agent> {
    const req = typeof request === "string" ? { agentId: request } : request;
    const res = await this.#unary((o) => this.services.agent.getAgent(req, o), true, options);
    return required(res.agent, "agent");
  }

  /** Erases an agent and everything it owns. Cannot be undone. */
  deleteAgent(request: string | DeleteAgentInput, options?: CallOptions): Promise<DeleteAgentResponse> {
    const req = typeof request === "string" ? { agentId: request } : request;
    return this.#unary((o) => this.services.agent.deleteAgent(req, o), true, options);
  }

  // ---------------------------------------------------------------------------------------------
  // AdminService
  // ---------------------------------------------------------------------------------------------

  /** Whether the server can serve (`status` is `healthy`). Needs no API key. */
  health(options?: CallOptions): Promise<HealthResponse> {
    return this.#unary((o) => this.services.admin.health({}, o), true, options);
  }

  /** The server's version, embedding model and limits. */
  serverInfo(options?: CallOptions): Promise<GetServerInfoResponse> {
    return this.#unary((o) => this.services.admin.getServerInfo({}, o), true, options);
  }

  /** Counts and sizes across the whole server. Needs an admin key. */
  stats(options?: CallOptions): Promise<GetStatsResponse> {
    return this.#unary((o) => this.services.admin.getStats({}, o), true, options);
  }

  /** Creates a scoped API key; the secret (`key`) is returned only here. Needs an admin key. Not retried. */
  createApiKey(request: CreateApiKeyInput, options?: CallOptions): Promise<CreateApiKeyResponse> {
    return this.#unary((o) => this.services.admin.createApiKey(request, o), false, options);
  }

  /** Lists API keys, newest first (never their secrets). Needs an admin key. */
  async listApiKeys(request: ListApiKeysInput = {}, options?: CallOptions): Promise<ApiKey[]> {
    const res = await this.#unary((o) => this.services.admin.listApiKeys(request, o), true, options);
    return res.apiKeys;
  }

  /** Revokes an API key by id; it stops working at once. Needs an admin key. */
  async revokeApiKey(request: string | RevokeApiKeyInput, options?: CallOptions): Promise<ApiKey> {
    const req = typeof request === "string" ? { id: request } : request;
    const res = await this.#unary((o) => this.services.admin.revokeApiKey(req, o), true, options);
    return required(res.apiKey, "api_key");
  }

  /** Describes the cluster; a single server answers one healthy node. */
  clusterStatus(options?: CallOptions): Promise<GetClusterStatusResponse> {
    return this.#unary((o) => this.services.admin.getClusterStatus({}, o), true, options);
  }

  /**
   * Cluster mode: drains a node. Its shards move to other nodes, make-before-break, after which it
   * owns nothing and can be stopped without a failed call. Needs an admin key; FAILED_PRECONDITION
   * on a single server.
   */
  drainClusterNode(nodeId: string, options?: CallOptions): Promise<DrainClusterNodeResponse> {
    return this.#unary((o) => this.services.admin.drainClusterNode({ nodeId }, o), true, options);
  }

  // ---------------------------------------------------------------------------------------------
  // EmbeddingService
  // ---------------------------------------------------------------------------------------------

  /** Embeds texts with the server's model; each vector is decoded into a Float32Array. */
  async embed(request: string[] | EmbedInput, options?: CallOptions): Promise<EmbedResult> {
    const req = Array.isArray(request) ? { texts: request } : request;
    const res = await this.#unary((o) => this.services.embedding.embed(req, o), true, options);
    return {
      vectors: res.embeddings.map((e) => decodeVector(e.vector)),
      model: res.model,
      dimensions: res.dimensions,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Call machinery
  // ---------------------------------------------------------------------------------------------

  async #unary<T>(call: (o: ConnectCallOptions) => Promise<T>, idempotent: boolean, options: CallOptions | undefined): Promise<T> {
    const timeoutMs = options?.timeoutMs ?? this.#timeoutMs;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : undefined;
    const maxRetries = idempotent ? (options?.retries ?? this.#retries) : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await call(connectOptions(options, deadline));
      } catch (reason) {
        const err = toEngramError(reason);
        if (!(await this.#shouldRetry(err, attempt, maxRetries, deadline, options?.signal))) {
          throw err;
        }
      }
    }
  }

  /** Waits the backoff and answers true when the failed attempt should be retried. */
  async #shouldRetry(err: EngramError, attempt: number, maxRetries: number, deadline: number | undefined, signal: AbortSignal | undefined): Promise<boolean> {
    if (err.code !== "UNAVAILABLE" || attempt >= maxRetries || signal?.aborted === true) {
      return false;
    }
    const delay = backoffDelay(this.#backoff, attempt, err.retryAfter);
    if (deadline !== undefined && Date.now() + delay >= deadline) {
      return false;
    }
    return sleep(delay, signal);
  }
}

function connectOptions(options: CallOptions | undefined, deadline: number | undefined): ConnectCallOptions {
  const out: ConnectCallOptions = {};
  if (options?.signal !== undefined) {
    out.signal = options.signal;
  }
  if (options?.headers !== undefined) {
    out.headers = options.headers;
  }
  if (deadline !== undefined) {
    // At least 1 ms: 0 would mean "no deadline" to Connect.
    out.timeoutMs = Math.max(1, deadline - Date.now());
  }
  return out;
}

/** `options` without its undefined fields, so that spreading it keeps the defaults they leave out. */
function definedOnly<T extends object>(options: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(options ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Whether a store request is safe to send twice: it names its memory by a client id or an upsert key. */
function retrySafe(request: StoreMemoryInput): boolean {
  return (request.id !== undefined && request.id !== "") || (request.key !== undefined && request.key !== "");
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) {
    throw new EngramError("INTERNAL", `server response lacks the required field ${field}`);
  }
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  }
  return value;
}
