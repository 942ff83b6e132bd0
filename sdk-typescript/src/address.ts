/**
 * The server address (its accepted forms, the same in every Engram SDK) and the error of a
 * connection that could not be opened.
 */
import { Code, ConnectError, type Transport } from "@connectrpc/connect";

/** Default server address: the Engram server's default port on this machine. */
export const DEFAULT_BASE_URL = "http://127.0.0.1:3300";
/** The port of an address that names none (443 for `https://` and `grpcs://`). */
export const DEFAULT_PORT = 3300;

/** The advice every Engram SDK gives when it cannot connect. */
export const START_HINT = "is the Engram server running? Start it with `make serve` or `engram-server serve`";

const SCHEMES: Record<string, "http" | "https"> = { http: "http", https: "https", grpc: "http", grpcs: "https" };

/**
 * Normalises a server address to `http(s)://host:port[/path]`, the form error messages name.
 *
 * Accepted, with or without a trailing slash: `host:port` (taken as `http://`), `http://host:port`,
 * `https://host:port`, `grpc://host:port` (same as `http://`: gRPC over h2c) and
 * `grpcs://host:port` (same as `https://`); IPv6 hosts in brackets (`[::1]:3300`). Without a port:
 * 3300, or 443 for `https://` and `grpcs://`. Empty or undefined gives {@link DEFAULT_BASE_URL}.
 *
 * ```ts
 * normalizeBaseUrl("127.0.0.1:3300/"); // "http://127.0.0.1:3300"
 * normalizeBaseUrl("grpc://[::1]:3300"); // "http://[::1]:3300"
 * ```
 *
 * @throws TypeError for an unsupported scheme, a missing host or a bad port.
 */
export function normalizeBaseUrl(address: string | undefined): string {
  const raw = (address ?? "").trim() || DEFAULT_BASE_URL;
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(raw);
  const schemeName = match === null ? "http" : match[1]!.toLowerCase();
  const rest = match === null ? raw : match[2]!;
  const scheme = SCHEMES[schemeName];
  if (scheme === undefined) {
    throw new TypeError(`unsupported scheme "${schemeName}://" in server address ${JSON.stringify(raw)}: use http, https, grpc or grpcs`);
  }
  const slash = rest.search(/[/?#]/);
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = (slash < 0 ? "" : rest.slice(slash)).replace(/\/+$/, "");
  const hostPort = /^(\[[0-9A-Fa-f:.%A-Za-z]+\]|[^:[\]@]+)(?::(\d*))?$/.exec(authority);
  if (hostPort === null) {
    throw new TypeError(`invalid server address ${JSON.stringify(raw)}: expected host:port, http(s)://host:port or grpc(s)://host:port`);
  }
  const host = hostPort[1]!;
  const portText = hostPort[2] ?? "";
  const port = portText === "" ? (scheme === "https" ? 443 : DEFAULT_PORT) : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`invalid port in server address ${JSON.stringify(raw)}`);
  }
  const url = `${scheme}://${host}:${port}${path}`;
  try {
    new URL(url);
  } catch {
    throw new TypeError(`invalid server address ${JSON.stringify(raw)}`);
  }
  return url;
}

/** `cannot connect to <address> (<cause>): is the Engram server running? ...` */
export function cannotConnectMessage(address: string, cause: string, hint: string = START_HINT): string {
  return `cannot connect to ${address} (${cause}): ${hint}`;
}

// Node's system error codes of a connection that could not be opened, and the cause to report.
const NODE_CAUSES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "DNS lookup failed",
  EAI_AGAIN: "DNS lookup failed",
  EAI_FAIL: "DNS lookup failed",
  EAI_NONAME: "DNS lookup failed",
  ETIMEDOUT: "connection timed out",
  ENETUNREACH: "network unreachable",
  EHOSTUNREACH: "host unreachable",
  EADDRNOTAVAIL: "address not available",
};

/**
 * The cause of a failed connection found in an error's `cause` chain (a Node system error such
 * as `ECONNREFUSED`), or undefined when the chain has none.
 */
export function connectCause(reason: unknown): string | undefined {
  const pending: unknown[] = [reason];
  for (let i = 0; i < 20 && pending.length > 0; i++) {
    const e = pending.shift();
    if (typeof e !== "object" || e === null) {
      continue;
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code in NODE_CAUSES) {
      return NODE_CAUSES[code];
    }
    pending.push((e as { cause?: unknown }).cause);
    const errors = (e as { errors?: unknown }).errors; // AggregateError: one per address tried
    if (Array.isArray(errors)) {
      pending.push(...(errors as unknown[]));
    }
  }
  return undefined;
}

/**
 * Wraps a transport so that a connection that cannot be opened fails with UNAVAILABLE naming the
 * address and the cause. `connecting` tells whether the connection is still being opened: a
 * deadline that passes then is a connect timeout, also UNAVAILABLE.
 */
export function withConnectErrors(transport: Transport, address: string, connecting?: () => boolean): Transport {
  const convert = (reason: unknown): unknown => {
    const err = ConnectError.from(reason);
    if (err.metadata.has("grpc-status")) {
      return reason; // the server answered
    }
    let cause = connectCause(reason);
    if (cause === undefined && err.code === Code.DeadlineExceeded && connecting?.() === true) {
      cause = "connection timed out";
    }
    if (cause === undefined) {
      return reason;
    }
    return new ConnectError(cannotConnectMessage(address, cause), Code.Unavailable, undefined, undefined, reason);
  };
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      try {
        return await transport.unary(method, signal, timeoutMs, header, input, contextValues);
      } catch (e) {
        throw convert(e);
      }
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      const res = await transport.stream(method, signal, timeoutMs, header, input, contextValues).catch((e: unknown) => {
        throw convert(e);
      });
      const messages = res.message;
      async function* converted(): typeof messages {
        try {
          yield* messages;
        } catch (e) {
          throw convert(e);
        }
      }
      return { ...res, message: converted() };
    },
  };
}

/**
 * A `fetch` for gRPC-Web whose network failures (a `TypeError` such as Chromium's "Failed to
 * fetch") become UNAVAILABLE naming the address. Browsers do not tell why a request failed: the
 * server may be down, unreachable, or not allow the page's origin.
 */
export function fetchWithConnectErrors(address: string, fetchImpl: typeof fetch = globalThis.fetch): typeof fetch {
  const hint = `${START_HINT}; from a browser, the server must also allow this page's origin (engram-server --cors-origins)`;
  return async (input, init) => {
    try {
      return await fetchImpl(input, init);
    } catch (e) {
      if (e instanceof TypeError) {
        throw new ConnectError(cannotConnectMessage(address, `network error: ${e.message}`, hint), Code.Unavailable, undefined, undefined, e);
      }
      throw e;
    }
  };
}
