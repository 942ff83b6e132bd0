/**
 * The change stream of MemoryService.WatchMemories as an `AsyncIterable<MemoryEvent>` that resumes
 * by itself: see {@link MemoryWatch}.
 */
import type { BackoffOptions } from "./client.js";
import { EngramError, toEngramError, type ErrorCode } from "./errors.js";
import type { MemoryEvent } from "./gen/engram/v1/messages_pb.js";
import type { WatchMemoriesResponse } from "./gen/engram/v1/request_response_pb.js";

/** Options of {@link EngramClientBase.watch}. */
export interface WatchOptions {
  /**
   * Where to start: `""` (the default) for the changes from now on, `"0"` for every change the
   * server still retains, or a cursor saved from an earlier watch ({@link MemoryWatch.cursor},
   * `MemoryEvent.cursor`) to continue exactly after it.
   */
  startAfter?: string;
  /** Stops the watch: the `for await` loop ends (without an error) once the signal aborts. */
  signal?: AbortSignal;
  /** Extra headers for every call of this watch (each reconnection included). */
  headers?: Record<string, string>;
  /**
   * How many reconnections in a row may fail before the watch throws; the count starts again once
   * a response arrives. Default: the client's `retries`. `Infinity` never gives up.
   */
  retries?: number;
  /** The wait before each reconnection. Default: the client's `backoff`. */
  backoff?: BackoffOptions;
}

/** Opens one WatchMemories call: the client's generated method, bound to its transport. */
export type OpenWatch = (
  request: { agentId: string; startAfter: string },
  options: { signal: AbortSignal; headers?: Record<string, string> },
) => AsyncIterable<WatchMemoriesResponse>;

/** How a watch reconnects: the client's settings, overridden by the watch's options. */
export interface WatchPolicy {
  retries: number;
  backoff: Required<BackoffOptions>;
}

/**
 * Codes of client-made errors that mean the connection or the stream was dropped (a server that
 * stops resets its streams; a proxy may cut a long response), rather than a refused request.
 */
const DROPPED: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["UNKNOWN", "INTERNAL", "CANCELLED", "ABORTED"]);

/**
 * A running watch of memory changes (MemoryService.WatchMemories), made by
 * {@link EngramClientBase.watch}. Iterate it with `for await` to get each {@link MemoryEvent} once,
 * in the order the server made the changes:
 *
 * ```ts
 * const controller = new AbortController();
 * const watch = client.watch("support-bot", { startAfter: savedCursor, signal: controller.signal });
 * for await (const event of watch) {
 *   console.log(MemoryEventType[event.type], event.memoryId, event.memory?.content);
 *   saveCursor(watch.cursor); // resume here next time
 * }
 * ```
 *
 * The stream never ends on its own. When the connection drops, the server restarts or answers
 * `UNAVAILABLE`, the watch reconnects after a backoff and resumes after {@link cursor}: no change is
 * missed or repeated. It gives up (throwing the last {@link EngramError}) after the client's
 * `retries` reconnections fail in a row. Heartbeats (responses without events, sent while nothing
 * changes) are never yielded; they only move the cursor.
 *
 * It ends without an error when `options.signal` aborts or the loop is left (`break`, `return`,
 * a thrown error): the call is cancelled at once. It throws an {@link EngramError} of code
 * `OUT_OF_RANGE` when the cursor is older than the changes the server retains (resynchronise with
 * `client.export()`, then start a new watch from now), and `INVALID_ARGUMENT` for a malformed cursor
 * or one ahead of the server.
 *
 * Iterating again after a loop ended continues after {@link cursor}; a watch can be iterated by one
 * loop at a time.
 */
export class MemoryWatch implements AsyncIterable<MemoryEvent> {
  /** The agent watched; `""` for every agent the API key may access. */
  readonly agentId: string;
  readonly #open: OpenWatch;
  readonly #policy: WatchPolicy;
  readonly #signal: AbortSignal | undefined;
  readonly #headers: Record<string, string> | undefined;
  #cursor: string;
  #reconnects = 0;
  #active = false;

  /** @internal Made by {@link EngramClientBase.watch}. */
  constructor(agentId: string, options: WatchOptions, policy: WatchPolicy, open: OpenWatch) {
    this.agentId = agentId;
    this.#cursor = options.startAfter ?? "";
    this.#signal = options.signal;
    this.#headers = options.headers;
    this.#policy = policy;
    this.#open = open;
  }

  /**
   * The position after the last event (or heartbeat) this watch handed out: pass it as
   * `startAfter` to a later watch to continue exactly after it. Equal to `startAfter` until the
   * first response arrives, which the server sends at once (with the starting cursor of a watch
   * from now).
   */
  get cursor(): string {
    return this.#cursor;
  }

  /** How many times this watch reconnected after a dropped stream. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Yields each change, oldest first; see {@link MemoryWatch}. */
  async *[Symbol.asyncIterator](): AsyncGenerator<MemoryEvent, void, undefined> {
    for await (const response of this.#stream()) {
      for (const event of response.events) {
        if (isAborted(this.#signal)) {
          return;
        }
        this.#cursor = event.cursor;
        yield event;
      }
      if (response.cursor !== "") {
        this.#cursor = response.cursor;
      }
    }
  }

  /**
   * The raw responses of the stream, heartbeats included (`events` empty), with the same
   * reconnection and cursor: for consumers that want the server's batches.
   */
  async *responses(): AsyncGenerator<WatchMemoriesResponse, void, undefined> {
    for await (const response of this.#stream()) {
      if (response.cursor !== "") {
        this.#cursor = response.cursor;
      }
      yield response;
    }
  }

  /** The responses of one call after another, reconnecting after {@link cursor}. */
  async *#stream(): AsyncGenerator<WatchMemoriesResponse, void, undefined> {
    if (this.#active) {
      throw new EngramError("FAILED_PRECONDITION", "this watch is already being iterated; a watch serves one loop at a time");
    }
    this.#active = true;
    const signal = this.#signal;
    try {
      let failures = 0;
      for (;;) {
        if (isAborted(signal)) {
          return;
        }
        const call = new AbortController();
        const onAbort = (): void => call.abort(signal?.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        let failure: EngramError;
        try {
          const stream = this.#open(
            { agentId: this.agentId, startAfter: this.#cursor },
            this.#headers === undefined ? { signal: call.signal } : { signal: call.signal, headers: this.#headers },
          );
          for await (const response of stream) {
            failures = 0;
            yield response;
          }
          // The server never ends a watch unless it is stopping: reconnect (to it or another).
          failure = new EngramError("UNAVAILABLE", "the server ended the watch (it is stopping)");
        } catch (reason) {
          if (isAborted(signal)) {
            return;
          }
          failure = toEngramError(reason);
          if (!(failure.code === "UNAVAILABLE" || (!failure.fromServer && DROPPED.has(failure.code)))) {
            throw failure;
          }
        } finally {
          signal?.removeEventListener("abort", onAbort);
          call.abort(); // a no-op once the call ended; cancels it when the loop was left
        }
        if (failures >= this.#policy.retries) {
          throw failure;
        }
        const wait = backoffDelay(this.#policy.backoff, failures, failure.retryAfter);
        failures++;
        if (!(await sleep(wait, signal))) {
          return;
        }
        this.#reconnects++;
      }
    } finally {
      this.#active = false;
    }
  }
}

/** Whether `signal` has aborted (a function, so that TypeScript does not narrow it across awaits). */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** The n-th (from 0) retry's wait: full jitter up to min(maxMs, initialMs * multiplier^n), at least `retryAfter` seconds. */
export function backoffDelay(backoff: Required<BackoffOptions>, attempt: number, retryAfter: number | undefined): number {
  const { initialMs, maxMs, multiplier } = backoff;
  let delay = Math.random() * Math.min(maxMs, initialMs * multiplier ** attempt);
  if (retryAfter !== undefined) {
    delay = Math.max(delay, retryAfter * 1000);
  }
  return delay;
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (isAborted(signal)) {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
