import type { Interceptor, Transport } from "@connectrpc/connect";

/**
 * An interceptor that sets `authorization: Bearer <apiKey>` on every request. The client adds it
 * for you from the `apiKey` option; use it when you build a Connect transport yourself.
 */
export function apiKeyInterceptor(apiKey: string): Interceptor {
  return headersInterceptor({ authorization: `Bearer ${apiKey}` });
}

/** An interceptor that sets fixed headers on every request (headers set per call win). */
export function headersInterceptor(headers: Record<string, string>): Interceptor {
  const entries = Object.entries(headers);
  return (next) => async (req) => {
    for (const [name, value] of entries) {
      if (!req.header.has(name)) {
        req.header.set(name, value);
      }
    }
    return next(req);
  };
}

/**
 * Wraps a transport built elsewhere (the `transport` option) so that every call carries `headers`,
 * as the interceptor does for the default transports.
 */
export function withHeaders(transport: Transport, headers: Record<string, string>): Transport {
  if (Object.keys(headers).length === 0) {
    return transport;
  }
  const merge = (header: HeadersInit | undefined): Headers => {
    const h = new Headers(header);
    for (const [name, value] of Object.entries(headers)) {
      if (!h.has(name)) {
        h.set(name, value);
      }
    }
    return h;
  };
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.unary(method, signal, timeoutMs, merge(header), input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, timeoutMs, merge(header), input, contextValues),
  };
}
