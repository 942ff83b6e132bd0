/**
 * Errors raised by the Engram client.
 *
 * ```
 * Error
 * └── EngramError            every failure of a call, server-sent or client-made
 *       .code                gRPC code name: "NOT_FOUND", "INVALID_ARGUMENT", "UNAVAILABLE", ...
 *       .message             human-readable text (the server's message when fromServer)
 *       .details             google.rpc error details as proto3 JSON objects with "@type"
 *       .retryAfter          seconds, from a google.rpc.RetryInfo detail, when the server sent one
 *       .fromServer          true when the server answered with this status, false when the
 *                            client made it up (deadline, cancellation, connection failure)
 *       .cause               the underlying ConnectError or exception
 * ```
 *
 * The code names are the same strings in every Engram SDK and in the REST error body
 * (`{"code": "NOT_FOUND", "message": ..., "details": [...]}`).
 */
import { ConnectError } from "@connectrpc/connect";
import { createRegistry, fromBinary, toJson, type JsonObject } from "@bufbuild/protobuf";
import { CODE_NAMES } from "./codes.gen.js";
import { file_google_rpc_error_details, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** A gRPC status code name, as every Engram SDK spells it. */
export type ErrorCode = Exclude<(typeof CODE_NAMES)[number], "OK">;

/** Converts a numeric gRPC code to its name; unknown numbers become "UNKNOWN". */
export function codeName(code: number): ErrorCode {
  const name = CODE_NAMES[code];
  return name === undefined || name === "OK" ? "UNKNOWN" : name;
}

/** One google.rpc error detail in proto3 JSON form, e.g. `{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [...]}`. */
export type ErrorDetail = JsonObject & { "@type": string };

const detailRegistry = createRegistry(file_google_rpc_error_details);
const TYPE_PREFIX = "type.googleapis.com/";

/** The error every client method throws. */
export class EngramError extends Error {
  /** gRPC status code name, e.g. `"NOT_FOUND"`. */
  readonly code: ErrorCode;
  /** Error details sent by the server (google.rpc.* messages as proto3 JSON). */
  readonly details: ErrorDetail[];
  /** Seconds to wait before retrying, from a google.rpc.RetryInfo detail; undefined when absent. */
  readonly retryAfter: number | undefined;
  /** True when the server sent this status; false when the client produced it. */
  readonly fromServer: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: ErrorDetail[]; retryAfter?: number; fromServer?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EngramError";
    this.code = code;
    this.details = options.details ?? [];
    this.retryAfter = options.retryAfter;
    this.fromServer = options.fromServer ?? false;
  }

  override toString(): string {
    return `EngramError [${this.code}]: ${this.message}`;
  }
}

/** Converts anything a Connect call can throw into an EngramError (returned as is when it already is one). */
export function toEngramError(reason: unknown): EngramError {
  if (reason instanceof EngramError) {
    return reason;
  }
  const err = ConnectError.from(reason);
  const details: ErrorDetail[] = [];
  let retryAfter: number | undefined;
  for (const detail of err.details) {
    if ("desc" in detail) {
      // Outgoing detail (built locally); not expected on received errors.
      details.push({ "@type": TYPE_PREFIX + detail.desc.typeName, ...(toJson(detail.desc, detail.value as never) as JsonObject) });
      continue;
    }
    const desc = detailRegistry.getMessage(detail.type);
    if (desc === undefined) {
      details.push({ "@type": TYPE_PREFIX + detail.type, value: base64(detail.value) });
      continue;
    }
    try {
      const msg = fromBinary(desc, detail.value);
      details.push({ "@type": TYPE_PREFIX + detail.type, ...(toJson(desc, msg) as JsonObject) });
      if (desc.typeName === RetryInfoSchema.typeName) {
        const info = fromBinary(RetryInfoSchema, detail.value);
        if (info.retryDelay !== undefined) {
          retryAfter = Number(info.retryDelay.seconds) + info.retryDelay.nanos / 1e9;
        }
      }
    } catch {
      details.push({ "@type": TYPE_PREFIX + detail.type, value: base64(detail.value) });
    }
  }
  // A status that the server sent arrives in the gRPC trailers (or a trailers-only header
  // block) and carries "grpc-status"; over Connect it arrives in a response of a Connect content
  // type (a JSON error body, or the end of a stream), whose headers the error keeps. Errors made by
  // the client (deadline, abort, network) carry neither.
  const fromServer =
    err.metadata.has("grpc-status") ||
    err.metadata.has("grpc-status-details-bin") ||
    CONNECT_CONTENT_TYPE.test(err.metadata.get("content-type") ?? "");
  return new EngramError(codeName(err.code), err.rawMessage, { details, retryAfter, fromServer, cause: reason });
}

/** The content types of Connect responses (unary JSON errors, and streams). */
const CONNECT_CONTENT_TYPE = /^application\/(?:connect\+)?(?:json|proto)(?:;|$)/i;

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) {
    s += String.fromCharCode(b);
  }
  return btoa(s);
}
