// Integration tests of duplicates, upserts, consolidation and the change stream (watch) against a
// real engram-server: store outcomes, consolidate, watch on every transport (gRPC, gRPC-Web,
// Connect binary and JSON): order, cursors, abort, errors, OUT_OF_RANGE for an expired cursor, and
// resumption across server restarts (graceful and killed) with no gap and no duplicate.
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  ApiKeyRole,
  DuplicatePolicy,
  EngramClient,
  EngramError,
  MemoryEventType,
  StoreOutcome,
  type EngramClientBase,
  type EngramClientOptions,
  type ErrorCode,
  type MemoryEvent,
  type MemoryWatch,
} from "engram-memory-client";
import { EngramClient as BrowserEngramClient } from "engram-memory-client/browser";
import { freePort, startServer, type RunningServer } from "./server.js";

let server: RunningServer;
let client: EngramClient;
let startError: unknown;
const closers: (() => void)[] = [];

before(async () => {
  try {
    server = await startServer();
    client = new EngramClient({ baseUrl: server.url, apiKey: server.apiKey });
    closers.push(() => client.close());
  } catch (e) {
    startError = e;
  }
});

beforeEach(() => {
  if (startError !== undefined) {
    throw startError;
  }
});

after(async () => {
  for (const close of closers) {
    close();
  }
  await server?.stop();
});

/** The transports the SDK supports, each as a client factory. */
const TRANSPORTS: Record<string, (url: string, options: EngramClientOptions) => EngramClientBase> = {
  grpc: (url, options) => new EngramClient({ ...options, baseUrl: url }),
  "grpc-web": (url, options) => new BrowserEngramClient({ ...options, baseUrl: url }),
  connect: (url, options) => {
    const sessionManager = new Http2SessionManager(url);
    closers.push(() => sessionManager.abort());
    return new EngramClient({ ...options, transport: createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager }) });
  },
  "connect-json": (url, options) =>
    new EngramClient({ ...options, transport: createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false }) }),
};

function clientOver(kind: string, url: string, options: EngramClientOptions = {}): EngramClientBase {
  const c = TRANSPORTS[kind]!(url, options);
  closers.push(() => c.close());
  return c;
}

/** The next `n` events of a watch (a loop that breaks after them; the watch continues after them next time). */
async function take(watch: MemoryWatch, n: number): Promise<MemoryEvent[]> {
  const out: MemoryEvent[] = [];
  for await (const event of watch) {
    out.push(event);
    if (out.length >= n) {
      break;
    }
  }
  return out;
}

/** Asserts that `run` rejects with an EngramError of `code` that the server sent. */
async function rejectsWith(run: Promise<unknown> | (() => Promise<unknown>), code: ErrorCode): Promise<EngramError> {
  try {
    await (typeof run === "function" ? run() : run);
  } catch (e) {
    assert.ok(e instanceof EngramError, `expected EngramError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    assert.equal(e.fromServer, true, "the server sent it");
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

function assertIncreasing(cursors: string[]): void {
  for (let i = 1; i < cursors.length; i++) {
    assert.ok(BigInt(cursors[i]!) > BigInt(cursors[i - 1]!), `cursors increase: ${cursors.join(", ")}`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("store outcomes: duplicates and upserts", () => {
  it("merges the same fact (the default policy, exact), and OFF stores a copy", async () => {
    const agent = "dup-exact";
    const first = await client.store({ agentId: agent, content: "The user prefers window seats", importance: 0.4, tags: ["travel"] });
    assert.equal(first.outcome, StoreOutcome.CREATED);
    assert.equal(first.created, true);
    const again = await client.store({ agentId: agent, content: "the user prefers window seats.", importance: 0.9, tags: ["seats"] });
    assert.equal(again.outcome, StoreOutcome.MERGED);
    assert.equal(again.created, false);
    assert.equal(again.memory?.id, first.memory?.id);
    assert.equal(again.memory?.version, 2);
    assert.deepEqual(again.memory?.tags, ["travel", "seats"]);
    const copy = await client.store({ agentId: agent, content: "The user prefers window seats", duplicatePolicy: DuplicatePolicy.OFF });
    assert.equal(copy.outcome, StoreOutcome.CREATED);
    assert.notEqual(copy.memory?.id, first.memory?.id);
    assert.equal((await client.list({ agentId: agent })).totalSize, 2);
  });

  it("merges a rephrasing with NEAR and a threshold, and keeps unrelated facts", async () => {
    const agent = "dup-near";
    const first = await client.store({ agentId: agent, content: "The meeting was moved to Thursday" });
    const near = await client.store({
      agentId: agent,
      content: "The meeting has been moved to Thursday",
      duplicatePolicy: DuplicatePolicy.NEAR,
      duplicateThreshold: 0.9,
    });
    assert.equal(near.outcome, StoreOutcome.MERGED);
    assert.equal(near.memory?.id, first.memory?.id);
    assert.equal(near.memory?.content, "The meeting has been moved to Thursday", "the newer text wins");
    const other = await client.store({ agentId: agent, content: "The flight leaves on Monday morning", duplicatePolicy: DuplicatePolicy.NEAR });
    assert.equal(other.outcome, StoreOutcome.CREATED);
    await rejectsWith(client.store({ agentId: agent, content: "x", duplicatePolicy: DuplicatePolicy.NEAR, duplicateThreshold: 1.5 }), "INVALID_ARGUMENT");
  });

  it("a repeat with a client id is UNCHANGED", async () => {
    const agent = "dup-id";
    const first = await client.store({ agentId: agent, content: "Retried", id: "retry-1" });
    assert.equal(first.outcome, StoreOutcome.CREATED);
    const again = await client.store({ agentId: agent, content: "Retried", id: "retry-1" });
    assert.equal(again.outcome, StoreOutcome.UNCHANGED);
    assert.equal(again.memory?.version, 1);
  });

  it("a key upserts: the agent's memory with the key is REPLACED, found by MemoryFilter.keys", async () => {
    const agent = "upsert";
    const first = await client.store({ agentId: agent, content: "theme: light", key: "prefs/theme", tags: ["ui"] });
    assert.equal(first.outcome, StoreOutcome.CREATED);
    assert.equal(first.memory?.key, "prefs/theme");
    const replaced = await client.store({ agentId: agent, content: "theme: dark", key: "prefs/theme" });
    assert.equal(replaced.outcome, StoreOutcome.REPLACED);
    assert.equal(replaced.memory?.id, first.memory?.id);
    assert.equal(replaced.memory?.version, 2);
    assert.deepEqual(replaced.memory?.tags, [], "replaced, not merged");
    const page = await client.list({ agentId: agent, filter: { keys: ["prefs/theme"] } });
    assert.deepEqual(page.memories.map((m) => m.content), ["theme: dark"]);
    await rejectsWith(client.store({ agentId: agent, content: "x", key: "k", id: "i" }), "INVALID_ARGUMENT");
  });

  it("batchStore reports one outcome per item", async () => {
    const agent = "dup-batch";
    await client.store({ agentId: agent, content: "Keyed", key: "k1" });
    const res = await client.batchStore([
      { agentId: agent, content: "Batch fact" },
      { agentId: agent, content: "batch fact." },
      { agentId: agent, content: "Keyed, again", key: "k1" },
    ]);
    assert.deepEqual(res.outcomes, [StoreOutcome.CREATED, StoreOutcome.MERGED, StoreOutcome.REPLACED]);
    assert.equal(res.createdCount, 1);
    await rejectsWith(client.batchStore([{ agentId: agent, content: "1", key: "k" }, { agentId: agent, content: "2", key: "k" }]), "INVALID_ARGUMENT");
  });
});

describe("consolidate", () => {
  const agent = "consolidate";
  let keep = "";
  let dup = "";

  it("a dry run lists the groups and changes nothing", async () => {
    const res = await client.batchStore([
      { agentId: agent, content: "The user is allergic to peanuts", importance: 0.9, duplicatePolicy: DuplicatePolicy.OFF },
      { agentId: agent, content: "the user is allergic to peanuts!", duplicatePolicy: DuplicatePolicy.OFF, tags: ["health"] },
      { agentId: agent, content: "Deploys run on Fridays", duplicatePolicy: DuplicatePolicy.OFF },
    ]);
    keep = res.memories[0]!.id;
    dup = res.memories[1]!.id;
    const dry = await client.consolidate(agent, { dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.equal(dry.mergedCount, 0);
    assert.equal(dry.groups.length, 1);
    assert.equal(dry.groups[0]?.keepId, keep);
    assert.deepEqual(dry.groups[0]?.duplicateIds, [dup]);
    assert.ok(dry.groups[0]!.minSimilarity > 0.95);
    assert.equal((await client.list({ agentId: agent })).totalSize, 3);
  });

  it("a read-only key may dry-run but not merge", async () => {
    const { key } = await client.createApiKey({ name: "consolidate-reader", role: ApiKeyRole.READ_ONLY });
    const reader = new EngramClient({ baseUrl: server.url, apiKey: key });
    closers.push(() => reader.close());
    assert.equal((await reader.consolidate(agent, { dryRun: true })).groups.length, 1);
    await rejectsWith(reader.consolidate(agent), "PERMISSION_DENIED");
  });

  it("merges each group into its kept memory, keeping the history", async () => {
    const res = await client.consolidate(agent, { similarityThreshold: 0.9 });
    assert.equal(res.dryRun, false);
    assert.equal(res.mergedCount, 1);
    assert.equal(res.groups[0]?.keepId, keep);
    const kept = await client.get({ id: keep, agentId: agent });
    assert.equal(kept.version, 2);
    assert.deepEqual(kept.tags, ["health"]);
    await rejectsWith(client.get({ id: dup, agentId: agent }), "NOT_FOUND");
    assert.equal((await client.consolidate(agent, { dryRun: true })).groups.length, 0);
  });

  it("rejects a threshold out of range", async () => {
    await rejectsWith(client.consolidate(agent, { similarityThreshold: 0.2 }), "INVALID_ARGUMENT");
  });
});

describe("watch", () => {
  for (const kind of Object.keys(TRANSPORTS)) {
    describe(`over ${kind}`, () => {
      it("replays an agent's changes in order with their memories, then follows new ones", { timeout: 60_000 }, async () => {
        const c = clientOver(kind, server.url, { apiKey: server.apiKey });
        const agent = `watch-order-${kind}`;
        const { memory } = await c.store({ agentId: agent, content: "Watched memory" });
        const id = memory!.id;
        await c.update({ memory: { id, agentId: agent, content: "Watched memory, edited" }, updateMask: { paths: ["content"] } });
        await c.delete({ id, agentId: agent });

        const watch = c.watch(agent, { startAfter: "0" });
        const replayed = await take(watch, 3);
        assert.deepEqual(replayed.map((e) => e.type), [MemoryEventType.CREATED, MemoryEventType.UPDATED, MemoryEventType.DELETED]);
        assert.ok(replayed.every((e) => e.memoryId === id && e.agentId === agent));
        assert.deepEqual(replayed.map((e) => e.version), [1, 2, 2]);
        assert.equal(replayed[0]!.memory?.content, "Watched memory");
        assert.equal(replayed[1]!.memory?.content, "Watched memory, edited");
        assert.equal(replayed[2]!.memory, undefined, "a deletion carries no memory");
        assert.ok(replayed[0]!.time !== undefined);
        assertIncreasing(replayed.map((e) => e.cursor));
        assert.equal(watch.cursor, replayed[2]!.cursor);

        // The same watch, iterated again, continues after its cursor: a live change.
        const next = take(watch, 1);
        await sleep(200);
        const live = await c.store({ agentId: agent, content: "Stored while watching" });
        const [followed] = await next;
        assert.equal(followed?.memoryId, live.memory?.id);
        assert.equal(followed?.type, MemoryEventType.CREATED);

        // A new watch from a saved cursor sees only what came after it.
        const resumed = await take(c.watch(agent, { startAfter: replayed[1]!.cursor }), 2);
        assert.deepEqual(resumed.map((e) => e.cursor), [replayed[2]!.cursor, followed!.cursor]);
      });

      it("from now sees only later changes; without an agent, every agent's", { timeout: 60_000 }, async () => {
        const c = clientOver(kind, server.url, { apiKey: server.apiKey });
        const a = `watch-now-${kind}-a`;
        const b = `watch-now-${kind}-b`;
        await c.store({ agentId: a, content: "before the watch" });
        const watch = c.watch(); // every agent, from now
        assert.equal(watch.agentId, "");
        const events = take(watch, 2);
        await sleep(300); // the server has taken "now" by then
        const ma = await c.store({ agentId: a, content: "after the watch" });
        const mb = await c.store({ agentId: b, content: "another agent's" });
        const got = await events;
        assert.deepEqual(got.map((e) => [e.agentId, e.memoryId]), [[a, ma.memory!.id], [b, mb.memory!.id]]);
      });

      it("ends without an error when its signal aborts", { timeout: 60_000 }, async () => {
        const c = clientOver(kind, server.url, { apiKey: server.apiKey });
        const controller = new AbortController();
        const started = Date.now();
        setTimeout(() => controller.abort(), 300);
        let count = 0;
        for await (const _ of c.watch(`watch-abort-${kind}`, { signal: controller.signal })) {
          count++;
        }
        assert.equal(count, 0);
        assert.ok(Date.now() - started < 5_000, "stopped promptly");
        // An aborted signal stops a watch before it starts.
        assert.deepEqual(await take(c.watch("x", { signal: controller.signal }), 1), []);
      });

      it("a malformed cursor is INVALID_ARGUMENT, not retried", { timeout: 60_000 }, async () => {
        const c = clientOver(kind, server.url, { apiKey: server.apiKey });
        const watch = c.watch(`watch-bad-${kind}`, { startAfter: "yesterday" });
        await rejectsWith(() => take(watch, 1), "INVALID_ARGUMENT");
        assert.equal(watch.reconnects, 0);
        await rejectsWith(() => take(c.watch("x", { startAfter: "9223372036854775807" }), 1), "INVALID_ARGUMENT");
      });
    });
  }

  it("stops on abort while it waits to reconnect to a server that is down", { timeout: 60_000 }, async () => {
    const port = await freePort();
    const c = clientOver("grpc", `http://127.0.0.1:${port}`, { retries: 0 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 500);
    const watch = c.watch("a", { signal: controller.signal, retries: Infinity, backoff: { initialMs: 50, maxMs: 100 } });
    assert.deepEqual(await take(watch, 1), []);
    assert.ok(watch.reconnects > 0, "it kept reconnecting until the abort");
    // With the client's retries (here none), a server that is down fails the watch.
    await assert.rejects(() => take(c.watch("a"), 1), (e: unknown) => e instanceof EngramError && e.code === "UNAVAILABLE" && !e.fromServer);
  });
});

describe("watch across server restarts", () => {
  it("resumes on every transport after a stop and after a kill, with no gap and no duplicate", { timeout: 120_000 }, async () => {
    // Writes name their memory (`id`), so that they are retried while the server comes back.
    const writer = new EngramClient({ baseUrl: server.url, apiKey: server.apiKey, retries: 10, backoff: { initialMs: 100, maxMs: 500 } });
    closers.push(() => writer.close());
    const kinds = Object.keys(TRANSPORTS);
    const watches = kinds.map((kind) => {
      const c = clientOver(kind, server.url, { apiKey: server.apiKey, retries: 100, backoff: { initialMs: 50, maxMs: 300 } });
      return c.watch(`restart-${kind}`, { startAfter: "0" });
    });
    const iterators = watches.map((w) => w[Symbol.asyncIterator]());
    const stored: string[][] = kinds.map(() => []);
    const seen: MemoryEvent[][] = kinds.map(() => []);
    const storeAll = async (n: number): Promise<void> => {
      for (const [i, kind] of kinds.entries()) {
        const res = await writer.store({ agentId: `restart-${kind}`, content: `fact ${n} of ${kind}`, id: `m${n}` });
        stored[i]!.push(res.memory!.id);
      }
    };
    const pull = async (count: number): Promise<void> => {
      await Promise.all(iterators.map(async (iter, i) => {
        for (let k = 0; k < count; k++) {
          const r = await iter.next();
          assert.equal(r.done, false, `${kinds[i]} watch ended`);
          seen[i]!.push(r.value as MemoryEvent);
        }
      }));
    };

    await storeAll(1);
    await pull(1); // every watch is connected and has handed out m1

    // A graceful stop: the server ends the streams. What is stored before the watches reconnect
    // (they are not even reading now) must reach them all the same.
    await server.restart();
    await storeAll(2);
    await storeAll(3);
    await pull(2);

    // A kill: the connections drop mid-stream.
    await server.restart({ hard: true });
    await storeAll(4);
    await pull(1);
    await Promise.all(iterators.map((iter) => iter.return()));

    for (const [i, kind] of kinds.entries()) {
      assert.deepEqual(seen[i]!.map((e) => e.memoryId), stored[i], `${kind}: every change once, in order`);
      assert.ok(seen[i]!.every((e) => e.type === MemoryEventType.CREATED));
      assertIncreasing(seen[i]!.map((e) => e.cursor));
      assert.ok(watches[i]!.reconnects >= 2, `${kind} reconnected (${watches[i]!.reconnects})`);
      assert.equal(watches[i]!.cursor, seen[i]!.at(-1)!.cursor);
    }
  });
});

describe("watch from an expired cursor", () => {
  let small: RunningServer | undefined;
  after(async () => {
    await small?.stop();
  });

  it("throws OUT_OF_RANGE on every transport", { timeout: 120_000 }, async () => {
    // Keeps 3 changes, and drops older ones every 0.1 s.
    small = await startServer({ args: ["--max-retained-events", "3", "--maintenance-interval", "0.1"] });
    const c = new EngramClient({ baseUrl: small.url, apiKey: small.apiKey });
    closers.push(() => c.close());
    await c.store({ agentId: "a", content: "the first change" });
    const [first] = await take(c.watch("a", { startAfter: "0" }), 1);
    for (let i = 0; i < 5; i++) {
      await c.store({ agentId: "a", content: `change ${i}` });
    }
    // Wait until maintenance dropped the first change.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const err = await take(c.watch("a", { startAfter: first!.cursor }), 1).then(() => undefined, (e: unknown) => e);
      if (err instanceof EngramError && err.code === "OUT_OF_RANGE") {
        break;
      }
      assert.ok(Date.now() < deadline, `the change was never dropped (last: ${String(err)})`);
      await sleep(100);
    }
    for (const kind of Object.keys(TRANSPORTS)) {
      const over = clientOver(kind, small.url, { apiKey: small.apiKey });
      const watch = over.watch("a", { startAfter: first!.cursor });
      const err = await rejectsWith(() => take(watch, 1), "OUT_OF_RANGE");
      assert.match(err.message, /older than the retained changes/, kind);
      assert.equal(watch.reconnects, 0, `${kind}: not retried`);
    }
  });
});
