// Integration tests: every RPC of the v1 API through EngramClient (gRPC over HTTP/2) against a real
// engram-server started on a free port, the Connect protocol through the `transport` option, plus
// the README quick start.
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import {
  ApiKeyRole,
  EngramClient,
  EngramError,
  MemoryType,
  RecallMode,
  type ErrorCode,
  type Memory,
} from "engram-memory-client";
import { createConnectTransport as createNodeConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createConnectTransport as createWebConnectTransport } from "@connectrpc/connect-web";
import type { Transport } from "@connectrpc/connect";
import { startServer, type RunningServer } from "./server.js";

let server: RunningServer;
let client: EngramClient;
const clients: EngramClient[] = [];

function newClient(apiKey: string | undefined): EngramClient {
  const c = new EngramClient({ baseUrl: server.url, apiKey, timeoutMs: 30_000 });
  clients.push(c);
  return c;
}

/** Asserts that `promise` rejects with an EngramError of `code` that the server sent. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<EngramError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof EngramError, `expected EngramError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    assert.equal(e.fromServer, true, "error comes from the server");
    assert.ok(e.message.length > 0, "error has a message");
    return e;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

const AGENT = "ts-sdk-agent";

let startError: unknown;

before(async () => {
  try {
    server = await startServer({ corsOrigins: "*" });
    client = newClient(server.apiKey);
  } catch (e) {
    startError = e;
  }
});

// A server that does not start fails every test (rather than cancelling them), with its output.
beforeEach(() => {
  if (startError !== undefined) {
    throw startError;
  }
});

after(async () => {
  for (const c of clients) {
    c.close();
  }
  await server?.stop();
});

describe("AdminService", () => {
  it("health answers healthy without an API key", async () => {
    const res = await newClient(undefined).health();
    assert.equal(res.status, "healthy");
    assert.ok(res.version.length > 0);
  });

  it("serverInfo reports version, model and limits", async () => {
    const info = await client.serverInfo();
    assert.equal(info.apiVersion, "v1");
    assert.ok(info.embeddingModel.length > 0);
    assert.ok(info.embeddingDimensions > 0);
    assert.equal(info.authRequired, true);
    assert.equal(info.limits?.maxTopK, 100);
    assert.equal(info.limits?.maxBatchSize, 256);
    assert.equal(info.limits?.maxPageSize, 1000);
  });

  it("clusterStatus answers a single healthy node", async () => {
    const res = await client.clusterStatus();
    assert.equal(res.nodeCount, 1);
    assert.equal(res.healthyNodeCount, 1);
    assert.equal(res.replicationFactor, 1);
    assert.equal(res.nodes.length, 1);
    assert.equal(res.nodes[0]?.healthy, true);
  });

  it("drainClusterNode is FAILED_PRECONDITION on a single server", async () => {
    const { nodes } = await client.clusterStatus();
    await rejectsWith(client.drainClusterNode(nodes[0]?.nodeId ?? ""), "FAILED_PRECONDITION");
  });
});

describe("MemoryService", () => {
  let dark: Memory;
  let batch: Memory[];

  it("store returns the stored memory", async () => {
    const res = await client.store({
      agentId: AGENT,
      content: "The user prefers dark mode in every editor.",
      memoryType: MemoryType.SEMANTIC,
      importance: 0.8,
      tags: ["preferences", "ui"],
      metadata: { source: "chat", turn: 3 },
      sessionId: "s1",
    });
    assert.equal(res.created, true);
    dark = res.memory!;
    assert.ok(dark.id.length > 0);
    assert.equal(dark.agentId, AGENT);
    assert.equal(dark.content, "The user prefers dark mode in every editor.");
    assert.equal(dark.memoryType, MemoryType.SEMANTIC);
    assert.ok(Math.abs(dark.importance - 0.8) < 1e-6);
    assert.deepEqual([...dark.tags].sort(), ["preferences", "ui"]);
    assert.deepEqual(dark.metadata, { source: "chat", turn: 3 });
    assert.equal(dark.sessionId, "s1");
    assert.equal(dark.version, 1);
    assert.ok(dark.createdAt !== undefined);
    assert.ok(dark.embeddingModel.length > 0);
  });

  it("store with a client id is idempotent, and refuses the same id with other content", async () => {
    const first = await client.store({ agentId: AGENT, id: "client-id-1", content: "Deploys happen on Tuesdays." });
    assert.equal(first.created, true);
    assert.equal(first.memory?.id, "client-id-1");
    const again = await client.store({ agentId: AGENT, id: "client-id-1", content: "Deploys happen on Tuesdays." });
    assert.equal(again.created, false);
    assert.equal(again.memory?.id, "client-id-1");
    await rejectsWith(client.store({ agentId: AGENT, id: "client-id-1", content: "Something else." }), "ALREADY_EXISTS");
  });

  it("store refuses bad input with INVALID_ARGUMENT", async () => {
    await rejectsWith(client.store({ agentId: AGENT, content: "" }), "INVALID_ARGUMENT");
    await rejectsWith(client.store({ agentId: "", content: "no agent" }), "INVALID_ARGUMENT");
    await rejectsWith(client.store({ agentId: AGENT, content: "x", importance: 1.5 }), "INVALID_ARGUMENT");
  });

  it("batchStore stores all, in order", async () => {
    const res = await client.batchStore([
      { agentId: AGENT, content: "The production database is PostgreSQL 16.", tags: ["infra"] },
      { agentId: AGENT, content: "Error E1234 means the payment gateway timed out.", tags: ["infra", "errors"] },
      { agentId: AGENT, content: "The user's cat is called Miso.", memoryType: MemoryType.EPISODIC },
    ]);
    assert.equal(res.createdCount, 3);
    assert.equal(res.memories.length, 3);
    assert.equal(res.memories[1]?.content, "Error E1234 means the payment gateway timed out.");
    batch = res.memories;
  });

  it("get returns the memory, NOT_FOUND for an unknown id", async () => {
    const got = await client.get(dark.id);
    assert.equal(got.id, dark.id);
    assert.equal(got.content, dark.content);
    await rejectsWith(client.get("no-such-memory"), "NOT_FOUND");
    await rejectsWith(client.get({ id: dark.id, agentId: "another-agent" }), "NOT_FOUND");
  });

  it("update changes fields and bumps the version; history lists both versions", async () => {
    const updated = await client.update({
      memory: { id: dark.id, content: "The user prefers dark mode, except in the terminal." },
      updateMask: { paths: ["content"] },
    });
    assert.equal(updated.version, 2);
    assert.equal(updated.content, "The user prefers dark mode, except in the terminal.");
    assert.deepEqual([...updated.tags].sort(), ["preferences", "ui"], "fields outside the mask are kept");
    const versions = await client.history(dark.id);
    assert.equal(versions.length, 2);
    assert.equal(versions[0]?.version, 1);
    assert.equal(versions[0]?.content, "The user prefers dark mode in every editor.");
    assert.equal(versions[1]?.version, 2);
    await rejectsWith(client.update({ memory: { id: "no-such-memory", content: "x" }, updateMask: { paths: ["content"] } }), "NOT_FOUND");
    await rejectsWith(client.history("no-such-memory"), "NOT_FOUND");
  });

  it("list pages with a true total; iterMemories walks every page", async () => {
    const first = await client.list({ agentId: AGENT, pageSize: 2 });
    assert.equal(first.memories.length, 2);
    assert.equal(first.totalSize, 5);
    assert.notEqual(first.nextPageToken, "");
    const ids = new Set<string>();
    for await (const m of client.iterMemories({ agentId: AGENT, pageSize: 2 })) {
      ids.add(m.id);
    }
    assert.equal(ids.size, 5);
    const infra = await client.list({ agentId: AGENT, filter: { tagsAny: ["infra"] } });
    assert.equal(infra.totalSize, 2);
    await rejectsWith(client.list({ agentId: AGENT, pageSize: 100_000 }), "INVALID_ARGUMENT");
  });

  it("recall finds the relevant memory first, with scores and explanations", async () => {
    const res = await client.recall({ agentId: AGENT, query: "what is the name of the user's cat?", topK: 3, explain: true });
    assert.ok(res.memories.length > 0);
    assert.ok(res.totalFound >= res.memories.length);
    const top = res.memories[0]!;
    assert.equal(top.content, "The user's cat is called Miso.");
    assert.ok(top.score > 0);
    assert.ok(top.explanation !== undefined, "explain fills explanation");
    const keyword = await client.recall({ agentId: AGENT, query: "E1234", topK: 1, mode: RecallMode.KEYWORD });
    assert.equal(keyword.memories[0]?.id, batch[1]!.id);
    await rejectsWith(client.recall({ agentId: AGENT, query: "x", topK: 1000 }), "INVALID_ARGUMENT");
    await rejectsWith(client.recall({ agentId: AGENT, query: "" }), "INVALID_ARGUMENT");
  });

  it("batchRecall answers one response per request", async () => {
    const res = await client.batchRecall([
      { agentId: AGENT, query: "database version", topK: 1 },
      { agentId: AGENT, query: "cat name", topK: 1 },
    ]);
    assert.equal(res.length, 2);
    assert.equal(res[0]?.memories[0]?.content, "The production database is PostgreSQL 16.");
    assert.equal(res[1]?.memories[0]?.content, "The user's cat is called Miso.");
  });

  it("link, graph and unlink", async () => {
    const link = await client.link({ agentId: AGENT, sourceId: batch[1]!.id, targetId: batch[0]!.id, relation: "caused_by", weight: 0.7 });
    assert.equal(link.sourceId, batch[1]!.id);
    assert.equal(link.targetId, batch[0]!.id);
    assert.equal(link.relation, "caused_by");
    assert.ok(Math.abs(link.weight - 0.7) < 1e-6);
    const graph = await client.graph({ agentId: AGENT, id: batch[1]!.id, depth: 1 });
    assert.equal(graph.memories[0]?.id, batch[1]!.id, "the starting memory comes first");
    assert.deepEqual(graph.memories.map((m) => m.id).sort(), [batch[0]!.id, batch[1]!.id].sort());
    assert.equal(graph.links.length, 1);
    await rejectsWith(client.link({ agentId: AGENT, sourceId: batch[0]!.id, targetId: batch[0]!.id }), "INVALID_ARGUMENT");
    await rejectsWith(client.link({ agentId: AGENT, sourceId: batch[0]!.id, targetId: "no-such-memory" }), "NOT_FOUND");
    const removed = await client.unlink({ agentId: AGENT, sourceId: batch[1]!.id, targetId: batch[0]!.id });
    assert.equal(removed.removedCount, 1);
    const after = await client.graph({ agentId: AGENT, id: batch[1]!.id, depth: 1 });
    assert.equal(after.links.length, 0);
  });

  it("export streams every memory; importMemories copies them into another agent, idempotently", async () => {
    const exported: Memory[] = [];
    for await (const m of client.export(AGENT)) {
      exported.push(m);
    }
    assert.equal(exported.length, 5);
    assert.ok(exported.every((m) => m.agentId === AGENT && m.embeddingModel.length > 0));
    // Memory ids are unique per server: a copy into another agent takes new ids (re-importing
    // the same ids is what makes an interrupted import safe to run again).
    const copies = exported.map((m) => ({ ...m, id: `${m.id}-copy` }));
    const res = await client.importMemories(copies, { agentId: "ts-sdk-imported" });
    assert.equal(res.importedCount, 5);
    assert.equal(res.skippedCount, 0);
    const again = await client.importMemories(copies, { agentId: "ts-sdk-imported" });
    assert.equal(again.importedCount, 0);
    assert.equal(again.skippedCount, 5);
    const copy = await client.list({ agentId: "ts-sdk-imported" });
    assert.equal(copy.totalSize, 5);
    const recalled = await client.recall({ agentId: "ts-sdk-imported", query: "cat name", topK: 1 });
    assert.equal(recalled.memories[0]?.content, "The user's cat is called Miso.");
  });

  it("forget counts on a dry run, deletes otherwise, and refuses an empty filter", async () => {
    const dry = await client.forget({ agentId: "ts-sdk-imported", filter: { tagsAny: ["infra"] }, dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.equal(dry.matchedCount, 2);
    assert.equal(dry.deletedCount, 0);
    const real = await client.forget({ agentId: "ts-sdk-imported", filter: { tagsAny: ["infra"] } });
    assert.equal(real.deletedCount, 2);
    assert.equal((await client.list({ agentId: "ts-sdk-imported" })).totalSize, 3);
    await rejectsWith(client.forget({ agentId: "ts-sdk-imported", filter: {} }), "INVALID_ARGUMENT");
  });

  it("delete removes a memory; deleting it again is NOT_FOUND", async () => {
    const res = await client.delete(batch[2]!.id);
    assert.equal(res.id, batch[2]!.id);
    await rejectsWith(client.get(batch[2]!.id), "NOT_FOUND");
    await rejectsWith(client.delete(batch[2]!.id), "NOT_FOUND");
  });
});

describe("AgentService", () => {
  it("listAgents, iterAgents and getAgent", async () => {
    const page = await client.listAgents();
    const ids = page.agents.map((a) => a.agentId);
    assert.ok(ids.includes(AGENT) && ids.includes("ts-sdk-imported"), `agents: ${ids.join(", ")}`);
    const all: string[] = [];
    for await (const a of client.iterAgents({ pageSize: 1 })) {
      all.push(a.agentId);
    }
    assert.deepEqual(all, ids);
    const agent = await client.getAgent(AGENT);
    assert.equal(agent.agentId, AGENT);
    assert.equal(agent.memoryCount, 4);
    assert.ok(agent.bytesStored > 0n);
    await rejectsWith(client.getAgent("no-such-agent"), "NOT_FOUND");
  });

  it("deleteAgent erases everything of the agent", async () => {
    const res = await client.deleteAgent("ts-sdk-imported");
    assert.equal(res.deletedMemoryCount, 3);
    await rejectsWith(client.getAgent("ts-sdk-imported"), "NOT_FOUND");
    assert.equal((await client.list({ agentId: "ts-sdk-imported" })).totalSize, 0);
  });

  it("stats counts across the server", async () => {
    const stats = await client.stats();
    assert.equal(stats.agentCount, 1);
    assert.equal(stats.memoryCount, 4n);
    assert.ok(stats.uptimeSeconds > 0);
  });
});

describe("API keys and auth", () => {
  it("rejects calls without a key or with a wrong key: UNAUTHENTICATED", async () => {
    await rejectsWith(newClient(undefined).recall({ agentId: AGENT, query: "cat" }), "UNAUTHENTICATED");
    await rejectsWith(newClient("wrong-key").store({ agentId: AGENT, content: "x" }), "UNAUTHENTICATED");
  });

  it("a read-only key reads but may not write (PERMISSION_DENIED); a revoked key stops working", async () => {
    const created = await client.createApiKey({ name: "ts-sdk-reader", role: ApiKeyRole.READ_ONLY });
    assert.ok(created.key.length > 0);
    const keyId = created.apiKey!.id;
    assert.equal(created.apiKey?.role, ApiKeyRole.READ_ONLY);
    const listed = await client.listApiKeys();
    assert.ok(listed.some((k) => k.id === keyId && k.name === "ts-sdk-reader"));
    assert.ok(listed.every((k) => !JSON.stringify(k, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)).includes(created.key)), "secrets are never listed");

    const reader = newClient(created.key);
    const recalled = await reader.recall({ agentId: AGENT, query: "database version", topK: 1 });
    assert.equal(recalled.memories[0]?.content, "The production database is PostgreSQL 16.");
    await rejectsWith(reader.store({ agentId: AGENT, content: "a reader may not write" }), "PERMISSION_DENIED");
    await rejectsWith(reader.stats(), "PERMISSION_DENIED");
    await rejectsWith(reader.createApiKey({ name: "escalate", role: ApiKeyRole.ADMIN }), "PERMISSION_DENIED");

    const revoked = await client.revokeApiKey(keyId);
    assert.equal(revoked.id, keyId);
    assert.ok(revoked.revokedAt !== undefined);
    await rejectsWith(reader.recall({ agentId: AGENT, query: "cat" }), "UNAUTHENTICATED");
    await rejectsWith(client.revokeApiKey("no-such-key"), "NOT_FOUND");
    await rejectsWith(client.createApiKey({ name: "no role" }), "INVALID_ARGUMENT");
  });
});

describe("EmbeddingService", () => {
  it("embed decodes packed float32 vectors", async () => {
    const res = await client.embed(["hello world", "memory server"]);
    assert.equal(res.vectors.length, 2);
    assert.ok(res.dimensions > 0);
    assert.ok(res.model.length > 0);
    for (const v of res.vectors) {
      assert.ok(v instanceof Float32Array);
      assert.equal(v.length, res.dimensions);
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-3, `L2-normalised, norm ${norm}`);
    }
    await rejectsWith(client.embed([]), "INVALID_ARGUMENT");
  });
});

describe("client behaviour against the server", () => {
  it("a deadline that passes fails with DEADLINE_EXCEEDED", async () => {
    const texts = Array.from({ length: 256 }, (_, i) => `text number ${i} to embed slowly enough`);
    await assert.rejects(client.embed(texts, { timeoutMs: 1 }), (e: unknown) => e instanceof EngramError && e.code === "DEADLINE_EXCEEDED");
  });

  it("an unreachable server fails with UNAVAILABLE after the retries", async () => {
    const dead = new EngramClient({ baseUrl: "http://127.0.0.1:1", retries: 2, backoff: { initialMs: 1, maxMs: 5 } });
    clients.push(dead);
    await assert.rejects(dead.health(), (e: unknown) => e instanceof EngramError && e.code === "UNAVAILABLE" && !e.fromServer);
  });
});

describe("over Connect (createConnectTransport as the transport option)", () => {
  const sessions: Http2SessionManager[] = [];
  after(() => {
    for (const s of sessions) {
      s.abort();
    }
  });
  const transports: [string, () => Transport, boolean][] = [
    ["connect-node over HTTP/2, binary", () => {
      const sessionManager = new Http2SessionManager(server.url);
      sessions.push(sessionManager);
      return createNodeConnectTransport({ baseUrl: server.url, httpVersion: "2", sessionManager });
    }, true],
    ["connect-node over HTTP/1.1, JSON", () =>
      createNodeConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false }), true],
    ["connect-web (fetch, HTTP/1.1), JSON", () => createWebConnectTransport({ baseUrl: server.url }), false],
  ];
  for (const [name, makeTransport, clientStreaming] of transports) {
    it(`${name}: unary, streams, errors from the server and deadlines`, async () => {
      const transport = makeTransport();
      const c = new EngramClient({ transport, apiKey: server.apiKey, retries: 0 });
      const agent = `connect-${name.split(" ")[0]}-${name.includes("HTTP/2") ? "h2" : "h1"}`;
      const { memory } = await c.store({ agentId: agent, content: "Connect carries this memory", memoryType: MemoryType.SEMANTIC, ttlSeconds: 3600n });
      assert.ok(memory !== undefined && memory.version === 1 && memory.memoryType === MemoryType.SEMANTIC);
      assert.ok(memory.expiresAt !== undefined, "timestamps survive the codec");
      const { memories } = await c.recall({ agentId: agent, query: "what does Connect carry?", topK: 1 });
      assert.equal(memories[0]?.id, memory.id);
      const exported: Memory[] = [];
      for await (const m of c.export(agent)) {
        exported.push(m);
      }
      assert.deepEqual(exported.map((m) => m.id), [memory.id]);
      if (clientStreaming) {
        const res = await c.importMemories(exported, { agentId: `${agent}-copy` });
        assert.equal(res.importedCount, 1);
      }
      // Errors the server sent, with their details.
      const bad = await rejectsWith(c.store({ agentId: agent, content: "" }), "INVALID_ARGUMENT");
      assert.equal(bad.details[0]?.["@type"], "type.googleapis.com/google.rpc.BadRequest");
      await rejectsWith(c.get("no-such-memory"), "NOT_FOUND");
      await rejectsWith(new EngramClient({ transport, apiKey: "wrong", retries: 0 }).stats(), "UNAUTHENTICATED");
      // An error inside a stream arrives in its end-of-stream message.
      await rejectsWith((async () => { for await (const _ of c.export("")) { /* nothing */ } })(), "INVALID_ARGUMENT");
      const texts = Array.from({ length: 256 }, (_, i) => `text number ${i} to embed slowly enough`);
      await assert.rejects(c.embed(texts, { timeoutMs: 1 }), (e: unknown) => e instanceof EngramError && e.code === "DEADLINE_EXCEEDED");
    });
  }
});

describe("README quick start", () => {
  const sdkDir = fileURLToPath(new URL("../../", import.meta.url));

  it("the README shows examples/quickstart.ts verbatim", async () => {
    const readme = await readFile(`${sdkDir}README.md`, "utf8");
    const example = await readFile(`${sdkDir}examples/quickstart.ts`, "utf8");
    assert.ok(readme.includes("```ts\n" + example + "```"), "README.md embeds examples/quickstart.ts in a ```ts block");
  });

  it("runs against the server", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [`${sdkDir}build/examples/quickstart.js`], {
      env: { ...process.env, ENGRAM_URL: server.url, ENGRAM_API_KEY: server.apiKey },
      timeout: 60_000,
    });
    assert.match(stdout, /^stored \S+/m);
    assert.match(stdout, /French/);
  });
});
