// Unit tests: no server. Round-trip encoding of every message (binary and JSON), and the client's
// own behaviour (auth header, retries, deadlines, errors, pages, streams, vectors) against an
// in-memory Connect router.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  create,
  equals,
  fromBinary,
  fromJson,
  fromJsonString,
  toBinary,
  toJson,
  toJsonString,
  type DescField,
  type DescFile,
  type DescMessage,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import {
  AdminService,
  AgentService,
  EmbeddingService,
  EngramClient,
  EngramError,
  MemoryService,
  MemoryEventType,
  MemoryType,
  StoreOutcome,
  codeName,
  decodeVector,
  encodeVector,
  normalizeBaseUrl,
} from "engram-memory-client";
import { EngramClient as BrowserEngramClient } from "engram-memory-client/browser";
import type { MemoryEventSchema } from "./messages.js";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { once } from "node:events";

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

/** Every message of the files the services are declared in and of their dependencies, google.protobuf excluded. */
function allMessages(): DescMessage[] {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (files.has(file.name) || file.proto.package === "google.protobuf") {
      return;
    }
    files.set(file.name, file);
    file.dependencies.forEach(visit);
  };
  for (const service of [MemoryService, AgentService, AdminService, EmbeddingService]) {
    visit(service.file);
  }
  const out: DescMessage[] = [];
  const add = (m: DescMessage): void => {
    out.push(m);
    m.nestedMessages.forEach(add);
  };
  for (const file of files.values()) {
    file.messages.forEach(add);
  }
  return out;
}

function scalarSample(field: DescField & { scalar: number }, variant: number): unknown {
  // ScalarType numbers: DOUBLE 1, FLOAT 2, INT64 3, UINT64 4, INT32 5, FIXED64 6, FIXED32 7, BOOL 8,
  // STRING 9, BYTES 12, UINT32 13, SFIXED32 15, SFIXED64 16, SINT32 17, SINT64 18.
  switch (field.scalar) {
    case 1: return 0.25 + variant;
    case 2: return 0.5 + variant;
    case 3: case 16: case 18: return -9007199254740993n - BigInt(variant);
    case 4: case 6: return 18446744073709551615n - BigInt(variant);
    case 5: case 15: case 17: return -7 - variant;
    case 7: case 13: return 7 + variant;
    case 8: return true;
    case 9: return `héllo ✓ ${field.name} ${variant}`;
    case 12: return new Uint8Array([0, 1, 2, 255, variant]);
    default: throw new Error(`no sample for scalar type ${field.scalar}`);
  }
}

const STRUCT_SAMPLE = { a: 1, b: "x", c: [true, null, 2.5], d: { e: "f" } };

function messageSample(desc: DescMessage, depth: number): Record<string, unknown> | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp": return { seconds: 1700000000n, nanos: 123000000 };
    case "google.protobuf.Duration": return { seconds: 90n, nanos: 500000000 };
    case "google.protobuf.FieldMask": return { paths: ["content", "memory_type"] };
    case "google.protobuf.Struct": return STRUCT_SAMPLE;
  }
  if (depth > 3) {
    return undefined;
  }
  const init: Record<string, unknown> = {};
  const oneofsSet = new Set<string>();
  for (const field of desc.fields) {
    if (field.oneof !== undefined) {
      if (oneofsSet.has(field.oneof.name)) {
        continue;
      }
      oneofsSet.add(field.oneof.name);
      const value = fieldValue(field, depth, 0);
      if (value !== undefined) {
        init[field.oneof.localName] = { case: field.localName, value };
      }
      continue;
    }
    const value = fieldValue(field, depth, 0);
    if (value !== undefined) {
      init[field.localName] = value;
    }
  }
  return init;
}

function singular(kind: "scalar" | "enum" | "message", field: DescField, depth: number, variant: number): unknown {
  if (kind === "scalar") {
    return scalarSample(field as DescField & { scalar: number }, variant);
  }
  if (kind === "enum") {
    const values = field.enum!.values;
    return values[Math.min(values.length - 1, 1 + variant)]!.number;
  }
  return messageSample(field.message!, depth + 1);
}

function fieldValue(field: DescField, depth: number, variant: number): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return singular("scalar", field, depth, variant);
    case "enum":
      return singular("enum", field, depth, variant);
    case "message":
      return singular("message", field, depth, variant);
    case "list": {
      const items = [0, 1].map((v) => singular(field.listKind, field, depth, v)).filter((v) => v !== undefined);
      return items.length > 0 ? items : undefined;
    }
    case "map": {
      const value = singular(field.mapKind, field, depth, 0);
      if (value === undefined) {
        return undefined;
      }
      return { episodic: value, semantic: value };
    }
  }
}

describe("round trip of every message", () => {
  const messages = allMessages();

  it("finds the whole API", () => {
    const names = messages.map((m) => m.typeName);
    for (const expected of ["engram.v1.Memory", "engram.v1.RecallRequest", "engram.v1.EmbedResponse", "engram.v1.GetClusterStatusResponse"]) {
      assert.ok(names.includes(expected), `${expected} is missing`);
    }
    assert.ok(messages.filter((m) => m.typeName.startsWith("engram.v1.")).length >= 60);
  });

  for (const desc of messages) {
    it(desc.typeName, () => {
      const init = messageSample(desc, 0) ?? {};
      const msg = create(desc, init);
      if (desc.fields.length > 0) {
        assert.ok(toBinary(desc, msg).length > 0, "sample sets at least one field");
      }
      // Binary.
      const bin = fromBinary(desc, toBinary(desc, msg));
      assert.ok(equals(desc, msg, bin), "binary round trip");
      // JSON, lowerCamelCase names (the default) and proto names (what the REST API writes).
      assert.ok(equals(desc, msg, fromJson(desc, toJson(desc, msg))), "JSON round trip");
      const snake = toJson(desc, msg, { useProtoFieldName: true });
      assert.ok(equals(desc, msg, fromJson(desc, snake)), "JSON (proto names) round trip");
      assert.ok(equals(desc, msg, fromJsonString(desc, toJsonString(desc, msg))), "JSON string round trip");
      if (desc.fields.some((f) => f.name.includes("_"))) {
        assert.ok(Object.keys(snake as object).some((k) => k.includes("_")), "proto names are snake_case");
      }
    });
  }

  it("RecalledMemory shares Memory's field numbers 1..16", async () => {
    const { MemorySchema, RecalledMemorySchema } = await import("./messages.js");
    const memory = create(MemorySchema, messageSample(MemorySchema, 0) ?? {});
    const recalled = fromBinary(RecalledMemorySchema, toBinary(MemorySchema, memory));
    assert.equal(recalled.id, memory.id);
    assert.equal(recalled.content, memory.content);
    assert.equal(recalled.embeddingModel, memory.embeddingModel);
    assert.deepEqual(recalled.metadata, memory.metadata);
  });

  it("writes enums as their full names in JSON", async () => {
    const { MemorySchema } = await import("./messages.js");
    const json = toJson(MemorySchema, create(MemorySchema, { memoryType: MemoryType.SEMANTIC }), { useProtoFieldName: true });
    assert.deepEqual(json, { memory_type: "MEMORY_TYPE_SEMANTIC" });
  });
});

// ---------------------------------------------------------------------------------------------
// Client behaviour against an in-memory router
// ---------------------------------------------------------------------------------------------

/** A CREATED event at `cursor`. */
function event(cursor: string, memoryId: string): MessageInitShape<typeof MemoryEventSchema> {
  return { cursor, memoryId, type: MemoryEventType.CREATED, agentId: "a", version: 1, memory: { id: memoryId, agentId: "a" } };
}

function clientWith(routes: (router: ConnectRouter) => void, options: { apiKey?: string; retries?: number; timeoutMs?: number } = {}): EngramClient {
  return new EngramClient({ transport: createRouterTransport(routes), backoff: { initialMs: 1, maxMs: 5 }, ...options });
}

describe("EngramClient (in-memory transport)", () => {
  it("sends the API key as a bearer token, and per-call headers", async () => {
    let seen: string | null = null;
    let extra: string | null = null;
    const client = clientWith((r) => r.service(AdminService, {
      health(_req, ctx) {
        seen = ctx.requestHeader.get("authorization");
        extra = ctx.requestHeader.get("x-trace");
        return { status: "healthy", version: "test" };
      },
    }), { apiKey: "secret-1" });
    const res = await client.health({ headers: { "x-trace": "t1" } });
    assert.equal(res.status, "healthy");
    assert.equal(seen, "Bearer secret-1");
    assert.equal(extra, "t1");
  });

  it("retries idempotent calls on UNAVAILABLE", async () => {
    let calls = 0;
    const client = clientWith((r) => r.service(MemoryService, {
      getMemory(req) {
        calls++;
        if (calls < 3) {
          throw new ConnectError("try again", Code.Unavailable);
        }
        return { memory: { id: req.id, content: "x" } };
      },
    }));
    const memory = await client.get("m1");
    assert.equal(memory.id, "m1");
    assert.equal(calls, 3);
  });

  it("gives up after `retries` and throws UNAVAILABLE", async () => {
    let calls = 0;
    const client = clientWith((r) => r.service(MemoryService, {
      recall() {
        calls++;
        throw new ConnectError("down", Code.Unavailable);
      },
    }), { retries: 4 });
    await assert.rejects(client.recall({ agentId: "a", query: "q" }), (e: unknown) => e instanceof EngramError && e.code === "UNAVAILABLE");
    assert.equal(calls, 5);
  });

  it("never retries store without a client id, and retries it with one", async () => {
    let calls = 0;
    const client = clientWith((r) => r.service(MemoryService, {
      storeMemory(req) {
        calls++;
        if (calls === 1) {
          throw new ConnectError("down", Code.Unavailable);
        }
        return { memory: { id: req.id || "generated", content: req.content }, created: true };
      },
    }));
    await assert.rejects(client.store({ agentId: "a", content: "c" }), { code: "UNAVAILABLE" });
    assert.equal(calls, 1);
    calls = 0;
    const res = await client.store({ agentId: "a", content: "c", id: "client-id-1" });
    assert.equal(res.memory?.id, "client-id-1");
    assert.equal(calls, 2);
  });

  it("does not retry other codes, and maps them to gRPC code names", async () => {
    let calls = 0;
    const client = clientWith((r) => r.service(MemoryService, {
      getMemory() {
        calls++;
        throw new ConnectError("memory m9 not found", Code.NotFound);
      },
    }));
    await assert.rejects(client.get("m9"), (e: unknown) => {
      assert.ok(e instanceof EngramError);
      assert.equal(e.code, "NOT_FOUND");
      assert.equal(e.message, "memory m9 not found");
      assert.equal(e.name, "EngramError");
      return true;
    });
    assert.equal(calls, 1);
  });

  it("decodes google.rpc error details and RetryInfo", async () => {
    const { BadRequestSchema, RetryInfoSchema } = await import("./rpc.js");
    const client = clientWith((r) => r.service(MemoryService, {
      storeMemory() {
        throw new ConnectError("content: must not be empty", Code.InvalidArgument, undefined, [
          { desc: BadRequestSchema, value: { fieldViolations: [{ field: "content", description: "must not be empty" }] } },
          { desc: RetryInfoSchema, value: { retryDelay: { seconds: 2n, nanos: 500000000 } } },
        ]);
      },
    }));
    await assert.rejects(client.store({ agentId: "a", content: "" }), (e: unknown) => {
      assert.ok(e instanceof EngramError);
      assert.equal(e.code, "INVALID_ARGUMENT");
      assert.deepEqual(e.details[0], {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        fieldViolations: [{ field: "content", description: "must not be empty" }],
      });
      assert.equal(e.retryAfter, 2.5);
      return true;
    });
  });

  it("fails with DEADLINE_EXCEEDED when timeoutMs passes", async () => {
    const client = clientWith((r) => r.service(AdminService, {
      async getStats(_req, ctx) {
        await new Promise((resolve) => setTimeout(resolve, 2000).unref());
        ctx.signal.throwIfAborted();
        return {};
      },
    }), { timeoutMs: 50 });
    const started = Date.now();
    await assert.rejects(client.stats(), { code: "DEADLINE_EXCEEDED", fromServer: false });
    assert.ok(Date.now() - started < 1500);
  });

  it("fails with CANCELLED when the signal aborts", async () => {
    const client = clientWith((r) => r.service(AdminService, {
      async getStats() {
        await new Promise((resolve) => setTimeout(resolve, 2000).unref());
        return {};
      },
    }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(client.stats({ signal: controller.signal }), { code: "CANCELLED" });
  });

  it("walks every page with iterMemories and iterAgents", async () => {
    const all = Array.from({ length: 7 }, (_, i) => ({ id: `m${i}`, agentId: "a", content: `c${i}` }));
    const client = clientWith((r) => {
      r.service(MemoryService, {
        listMemories(req) {
          const start = req.pageToken === "" ? 0 : Number(req.pageToken);
          const end = Math.min(all.length, start + req.pageSize);
          return { memories: all.slice(start, end), nextPageToken: end < all.length ? String(end) : "", totalSize: all.length };
        },
      });
      r.service(AgentService, {
        listAgents(req) {
          return req.pageToken === "" ? { agents: [{ agentId: "a" }], nextPageToken: "p2" } : { agents: [{ agentId: "b" }] };
        },
      });
    });
    const ids: string[] = [];
    for await (const m of client.iterMemories({ agentId: "a", pageSize: 3 })) {
      ids.push(m.id);
    }
    assert.deepEqual(ids, all.map((m) => m.id));
    const agents: string[] = [];
    for await (const a of client.iterAgents()) {
      agents.push(a.agentId);
    }
    assert.deepEqual(agents, ["a", "b"]);
  });

  it("streams export, retrying only before the first memory", async () => {
    let calls = 0;
    const client = clientWith((r) => r.service(MemoryService, {
      async *exportMemories(req) {
        calls++;
        if (calls === 1) {
          throw new ConnectError("down", Code.Unavailable);
        }
        yield { memory: { id: "e1", agentId: req.agentId } };
        yield { memory: { id: "e2", agentId: req.agentId } };
        if (calls === 2) {
          throw new ConnectError("down mid-stream", Code.Unavailable);
        }
      },
    }));
    const got: string[] = [];
    await assert.rejects(async () => {
      for await (const m of client.export("a")) {
        got.push(m.id);
      }
    }, { code: "UNAVAILABLE" });
    assert.deepEqual(got, ["e1", "e2"]);
    assert.equal(calls, 2);
  });

  it("retries store with an upsert key, and batchStore only when every item has an id or key", async () => {
    let calls = 0;
    const client = clientWith((r) => r.service(MemoryService, {
      storeMemory(req) {
        calls++;
        if (calls === 1) {
          throw new ConnectError("down", Code.Unavailable);
        }
        return { memory: { id: "m1", key: req.key, content: req.content }, created: false, outcome: StoreOutcome.REPLACED };
      },
      batchStoreMemories(req) {
        calls++;
        if (calls === 1) {
          throw new ConnectError("down", Code.Unavailable);
        }
        return { memories: req.requests.map((x, i) => ({ id: `m${i}`, content: x.content })), outcomes: req.requests.map(() => StoreOutcome.CREATED) };
      },
    }));
    const res = await client.store({ agentId: "a", content: "theme: dark", key: "prefs/theme" });
    assert.equal(res.outcome, StoreOutcome.REPLACED);
    assert.equal(calls, 2);
    calls = 0;
    const batch = await client.batchStore([{ agentId: "a", content: "x", key: "k1" }, { agentId: "a", content: "y", id: "i2" }]);
    assert.deepEqual(batch.outcomes, [StoreOutcome.CREATED, StoreOutcome.CREATED]);
    assert.equal(calls, 2);
    calls = 0;
    await assert.rejects(client.batchStore([{ agentId: "a", content: "x", key: "k1" }, { agentId: "a", content: "y" }]), { code: "UNAVAILABLE" });
    assert.equal(calls, 1);
  });

  it("consolidate sends dryRun and the threshold, and retries only a dry run", async () => {
    const seen: unknown[] = [];
    let fail = true;
    const client = clientWith((r) => r.service(MemoryService, {
      consolidateMemories(req) {
        seen.push({ agentId: req.agentId, dryRun: req.dryRun, threshold: req.similarityThreshold });
        if (fail) {
          fail = false;
          throw new ConnectError("down", Code.Unavailable);
        }
        return { groups: [{ keepId: "k", duplicateIds: ["d"], minSimilarity: 0.97 }], dryRun: req.dryRun };
      },
    }));
    const res = await client.consolidate("a", { dryRun: true, similarityThreshold: 0.9 });
    assert.equal(res.groups[0]?.keepId, "k");
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[0], { agentId: "a", dryRun: true, threshold: Math.fround(0.9) });
    fail = true;
    seen.length = 0;
    await assert.rejects(client.consolidate("a"), { code: "UNAVAILABLE" });
    assert.deepEqual(seen, [{ agentId: "a", dryRun: false, threshold: undefined }]);
  });

  it("watch yields events, not heartbeats, and resumes after UNAVAILABLE from the last cursor", async () => {
    const starts: string[] = [];
    const client = clientWith((r) => r.service(MemoryService, {
      async *watchMemories(req) {
        starts.push(req.startAfter);
        if (starts.length === 1) {
          yield { cursor: "3", events: [event("1", "m1"), event("3", "m2")] };
          yield { cursor: "5" }; // a heartbeat: no events, the cursor moves past other agents' changes
          throw new ConnectError("server restarting", Code.Unavailable);
        }
        if (starts.length === 2) {
          throw new ConnectError("still down", Code.Unavailable);
        }
        if (starts.length === 3) {
          yield { cursor: "7", events: [event("7", "m3")] };
          return; // the server stopped: the stream ended
        }
        yield { cursor: "9", events: [event("8", "m4"), event("9", "m5")] };
        await new Promise((resolve) => setTimeout(resolve, 10_000).unref());
      },
    }), { retries: 2 });
    const watch = client.watch("a", { startAfter: "0" });
    assert.equal(watch.cursor, "0");
    const got: string[] = [];
    for await (const e of watch) {
      got.push(`${e.cursor}:${e.memoryId}`);
      assert.equal(watch.cursor, e.cursor, "the cursor is the last event's while it is handled");
      if (got.length === 5) {
        break;
      }
    }
    assert.deepEqual(got, ["1:m1", "3:m2", "7:m3", "8:m4", "9:m5"]);
    assert.deepEqual(starts, ["0", "5", "5", "7"]);
    assert.equal(watch.reconnects, 3);
    assert.equal(watch.cursor, "9");
  });

  it("watch gives up after `retries` failed reconnections in a row, and never retries other codes", async () => {
    let calls = 0;
    const client = clientWith((r) => r.service(MemoryService, {
      async *watchMemories() {
        calls++;
        throw new ConnectError("down", Code.Unavailable);
      },
    }), { retries: 3 });
    await assert.rejects(async () => {
      for await (const _ of client.watch("a")) {
        assert.fail("no event expected");
      }
    }, { code: "UNAVAILABLE" });
    assert.equal(calls, 4);
    calls = 0;
    const expired = clientWith((r) => r.service(MemoryService, {
      async *watchMemories() {
        calls++;
        throw new ConnectError("cursor 1 is older than the retained changes", Code.OutOfRange);
      },
    }));
    await assert.rejects(async () => {
      for await (const _ of expired.watch("a", { startAfter: "1" })) {
        assert.fail("no event expected");
      }
    }, (e: unknown) => e instanceof EngramError && e.code === "OUT_OF_RANGE");
    assert.equal(calls, 1);
  });

  it("watch.responses() gives the raw batches, heartbeats included", async () => {
    const client = clientWith((r) => r.service(MemoryService, {
      async *watchMemories() {
        yield { cursor: "2", events: [event("1", "m1"), event("2", "m2")] };
        yield { cursor: "4" };
        await new Promise((resolve) => setTimeout(resolve, 10_000).unref());
      },
    }));
    const watch = client.watch();
    const batches: number[] = [];
    for await (const res of watch.responses()) {
      batches.push(res.events.length);
      if (batches.length === 2) {
        break;
      }
    }
    assert.deepEqual(batches, [2, 0]);
    assert.equal(watch.cursor, "4");
  });

  it("watch ends without an error when its signal aborts, and serves one loop at a time", async () => {
    let cancelled = false;
    const client = clientWith((r) => r.service(MemoryService, {
      async *watchMemories(_req, ctx) {
        yield { cursor: "1", events: [event("1", "m1")] };
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
        cancelled = true;
      },
    }));
    const controller = new AbortController();
    const watch = client.watch("a", { signal: controller.signal });
    const got: string[] = [];
    for await (const e of watch) {
      got.push(e.memoryId);
      await assert.rejects(watch[Symbol.asyncIterator]().next(), { code: "FAILED_PRECONDITION" });
      setTimeout(() => controller.abort(), 20);
    }
    assert.deepEqual(got, ["m1"]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(cancelled, "the call was cancelled");
  });

  it("watch rejects bad options at once", () => {
    const client = clientWith(() => {});
    assert.throws(() => client.watch("a", { retries: -1 }), { code: "INVALID_ARGUMENT" });
    assert.throws(() => client.watch(42 as unknown as string), { code: "INVALID_ARGUMENT" });
    assert.doesNotThrow(() => client.watch("a", { retries: Infinity }));
  });

  it("streams memories into importMemories", async () => {
    const client = clientWith((r) => r.service(MemoryService, {
      async importMemories(requests) {
        let imported = 0;
        for await (const req of requests) {
          assert.equal(req.agentId, "target");
          imported++;
        }
        return { importedCount: imported, skippedCount: 0 };
      },
    }));
    const res = await client.importMemories([{ id: "i1", content: "a" }, { id: "i2", content: "b" }], { agentId: "target" });
    assert.equal(res.importedCount, 2);
  });

  it("the browser client refuses importMemories over gRPC-Web before sending", async () => {
    const { EngramClient: BrowserClient } = await import("engram-memory-client/browser");
    let fetched = false;
    const realFetch = globalThis.fetch;
    globalThis.fetch = async () => {
      fetched = true;
      throw new Error("no network in unit tests");
    };
    try {
      const client = new BrowserClient({ baseUrl: "http://127.0.0.1:1", retries: 0 });
      await assert.rejects(client.importMemories([{ id: "i1", content: "a" }]), (err: unknown) => {
        assert.ok(err instanceof EngramError);
        assert.equal(err.code, "UNIMPLEMENTED");
        assert.equal(err.fromServer, false);
        return true;
      });
      assert.equal(fetched, false);
    } finally {
      globalThis.fetch = realFetch;
    }
  });

  it("decodes embeddings into Float32Array", async () => {
    const client = clientWith((r) => r.service(EmbeddingService, {
      embed(req) {
        return { embeddings: req.texts.map((_, i) => ({ vector: encodeVector([i, 0.5, -1.25]) })), model: "m", dimensions: 3 };
      },
    }));
    const res = await client.embed(["x", "y"]);
    assert.equal(res.dimensions, 3);
    assert.ok(res.vectors[1] instanceof Float32Array);
    assert.deepEqual(Array.from(res.vectors[1]!), [1, 0.5, -1.25]);
  });
});

describe("helpers", () => {
  it("decodeVector reads little-endian float32 at any byte offset", () => {
    const bytes = new Uint8Array(13);
    const view = new DataView(bytes.buffer);
    view.setFloat32(1, 1.5, true);
    view.setFloat32(5, -2, true);
    view.setFloat32(9, 0.25, true);
    assert.deepEqual(Array.from(decodeVector(bytes.subarray(1))), [1.5, -2, 0.25]);
    assert.throws(() => decodeVector(new Uint8Array(3)), RangeError);
  });

  it("codeName spells gRPC codes like every SDK", () => {
    assert.equal(codeName(1), "CANCELLED");
    assert.equal(codeName(5), "NOT_FOUND");
    assert.equal(codeName(16), "UNAUTHENTICATED");
    assert.equal(codeName(99), "UNKNOWN");
  });

  it("rejects negative options", () => {
    assert.throws(() => new EngramClient({ retries: -1 }), RangeError);
  });
});

describe("connecting", () => {
  const HINT = "is the Engram server running? Start it with `make serve` or `engram-server serve`";

  /** A port on 127.0.0.1 that nothing listens on. */
  async function closedPort(host = "127.0.0.1"): Promise<number> {
    const server = createServer();
    server.listen(0, host);
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it("every address form gives the same endpoint", () => {
    for (const address of ["h:3300", "h:3300/", "http://h:3300", "http://h:3300/", "HTTP://h:3300", " http://h:3300 ", "grpc://h:3300", "grpc://h:3300/", "h"]) {
      assert.equal(normalizeBaseUrl(address), "http://h:3300", address);
    }
    for (const address of ["https://h:3300", "https://h:3300/", "grpcs://h:3300"]) {
      assert.equal(normalizeBaseUrl(address), "https://h:3300", address);
    }
    assert.equal(normalizeBaseUrl("https://h"), "https://h:443");
    assert.equal(normalizeBaseUrl("http://h:80"), "http://h:80");
    for (const address of ["[::1]:3300", "http://[::1]:3300", "http://[::1]:3300/", "grpc://[::1]:3300"]) {
      assert.equal(normalizeBaseUrl(address), "http://[::1]:3300", address);
    }
    assert.equal(normalizeBaseUrl("https://proxy.example/engram/"), "https://proxy.example:443/engram");
    for (const bad of ["ftp://h:1", "http://h:port", "http://", "http://h:99999", "unix:///run/engram.sock"]) {
      assert.throws(() => normalizeBaseUrl(bad), TypeError, bad);
    }
  });

  it("the default is http://127.0.0.1:3300, with no environment variable", () => {
    assert.equal(normalizeBaseUrl(undefined), "http://127.0.0.1:3300");
    assert.equal(normalizeBaseUrl(""), "http://127.0.0.1:3300");
    const client = new EngramClient();
    assert.equal(client.baseUrl, "http://127.0.0.1:3300");
    client.close();
    assert.equal(new BrowserEngramClient().baseUrl, "http://127.0.0.1:3300");
    assert.equal(new EngramClient({ baseUrl: "localhost:4000/" }).baseUrl, "http://localhost:4000");
  });

  it("a closed port fails with UNAVAILABLE naming the address and the cause", async () => {
    const port = await closedPort();
    for (const baseUrl of [`http://127.0.0.1:${port}/`, `127.0.0.1:${port}`, `grpc://127.0.0.1:${port}`]) {
      const client = new EngramClient({ baseUrl, retries: 0 });
      try {
        await assert.rejects(client.health(), (e: unknown) => {
          assert.ok(e instanceof EngramError);
          console.log(`refused: ${e.toString()}`);
          assert.equal(e.code, "UNAVAILABLE");
          assert.equal(e.fromServer, false);
          assert.equal(e.message, `cannot connect to http://127.0.0.1:${port} (connection refused): ${HINT}`);
          return true;
        });
        // Streams too, and the error stays retryable: two retries are two more refusals.
        const retried = new EngramClient({ baseUrl, retries: 2, backoff: { initialMs: 1, maxMs: 2 } });
        await assert.rejects(retried.export("a").next(), { code: "UNAVAILABLE", message: new RegExp(`^cannot connect to http://127\\.0\\.0\\.1:${port} \\(connection refused\\)`) });
        retried.close();
      } finally {
        client.close();
      }
    }
  });

  it("an unresolvable host fails with UNAVAILABLE naming it", async () => {
    const client = new EngramClient({ baseUrl: "engram-host.invalid:3300", retries: 0 });
    await assert.rejects(client.health(), { code: "UNAVAILABLE", message: /^cannot connect to http:\/\/engram-host\.invalid:3300 \(DNS lookup failed\)/ });
    client.close();
  });

  it("a connection that does not open before the deadline fails with UNAVAILABLE", async (t) => {
    // A listener whose accept queue is full (backlog 0, never accepting) drops further SYNs: the
    // connection hangs. Node always accepts, so python3 holds the socket.
    const script = [
      "import socket, sys, time",
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
      "fill = [socket.socket() for _ in range(3)]",
      "[c.setblocking(False) or c.connect_ex(s.getsockname()) for c in fill]",
      "print(s.getsockname()[1], flush=True); sys.stdin.read()",
    ].join("\n");
    const child = spawn("python3", ["-c", script], { stdio: ["pipe", "pipe", "inherit"] });
    const spawned = await Promise.race([once(child.stdout, "data").then((d) => String(d[0]).trim()), once(child, "error").then(() => undefined)]);
    if (spawned === undefined) {
      t.skip("no python3 to hold a blocked listener");
      return;
    }
    const client = new EngramClient({ baseUrl: `127.0.0.1:${spawned}`, retries: 0, timeoutMs: 500 });
    try {
      await assert.rejects(client.health(), {
        code: "UNAVAILABLE",
        message: `cannot connect to http://127.0.0.1:${spawned} (connection timed out): ${HINT}`,
      });
    } finally {
      client.close();
      child.stdin.end();
      child.kill();
    }
  });
});

describe("public surface", () => {
  const expected = [
    "AdminService", "AgentService", "ApiKeyRole", "DEFAULT_BACKOFF", "DEFAULT_BASE_URL", "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_MS", "DuplicatePolicy", "EmbeddingInputType", "EmbeddingService", "EngramClient", "EngramClientBase",
    "EngramError", "MemoryEventType", "MemoryService", "MemoryType", "MemoryWatch", "RecallMode", "StoreOutcome",
    "apiKeyInterceptor", "codeName", "decodeVector",
    "encodeVector", "headersInterceptor", "normalizeBaseUrl", "timestampDate", "timestampFromDate", "timestampNow",
    "toEngramError",
  ];

  it("the Node and browser entries export the same names", async () => {
    const node = await import("engram-memory-client");
    const browser = await import("engram-memory-client/browser");
    assert.deepEqual(Object.keys(node).sort(), expected);
    assert.deepEqual(Object.keys(browser).sort(), expected);
  });

  it("EngramClient has a method per RPC", () => {
    const methods = [
      "store", "batchStore", "get", "update", "delete", "list", "iterMemories", "recall", "batchRecall", "forget",
      "history", "link", "unlink", "graph", "consolidate", "watch", "export", "importMemories", "listAgents", "iterAgents", "getAgent",
      "deleteAgent", "health", "serverInfo", "stats", "createApiKey", "listApiKeys", "revokeApiKey", "clusterStatus",
      "drainClusterNode", "embed", "close",
    ];
    for (const m of methods) {
      assert.equal(typeof (EngramClient.prototype as unknown as Record<string, unknown>)[m], "function", m);
    }
    const rpcCount = [MemoryService, AgentService, AdminService, EmbeddingService].reduce((n, s) => n + s.methods.length, 0);
    assert.equal(rpcCount, 29, "29 RPCs, each wrapped above");
  });
});
