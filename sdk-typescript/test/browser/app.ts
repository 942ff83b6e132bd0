// The page script of the browser test, bundled by esbuild for the browser: "engram-memory-client"
// resolves to the package's browser entry, given connect-web's Connect transport (JSON over fetch)
// through the `transport` option. (The entry's default, gRPC-Web, runs in the Node tests and the
// conformance suite.)
import { createConnectTransport } from "@connectrpc/connect-web";
import { EngramClient, EngramError, MemoryType } from "engram-memory-client";

export interface DemoResult {
  storedId: string;
  recalledId: string;
  recalledContent: string;
  score: number;
  exported: number;
  invalidCode: string;
  invalidField: string;
  notFoundCode: string;
  unauthenticatedCode: string;
  /** The error of a port nothing listens on: code and message. */
  unreachable: { code: string; message: string };
}

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (e) {
    return e instanceof EngramError ? e.code : `not an EngramError: ${String(e)}`;
  }
}

async function fieldOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "";
  } catch (e) {
    const detail = e instanceof EngramError ? e.details[0] : undefined;
    const violations = detail?.["fieldViolations"];
    return Array.isArray(violations) ? String((violations[0] as { field?: unknown } | undefined)?.field) : "";
  }
}

async function errorOf(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
    return { code: "OK", message: "" };
  } catch (e) {
    return e instanceof EngramError ? { code: e.code, message: e.message } : { code: "not an EngramError", message: String(e) };
  }
}

async function demo(baseUrl: string, apiKey: string, closedUrl: string): Promise<DemoResult> {
  const transport = createConnectTransport({ baseUrl });
  const client = new EngramClient({ transport, apiKey });
  const { memory } = await client.store({
    agentId: "browser-agent",
    content: "The browser user wants weekly summaries on Fridays.",
    memoryType: MemoryType.SEMANTIC,
    importance: 0.9,
  });
  await client.store({ agentId: "browser-agent", content: "The office plant is a fern." });
  const { memories } = await client.recall({ agentId: "browser-agent", query: "when should summaries be sent?", topK: 1 });
  const top = memories[0];
  let exported = 0;
  for await (const _ of client.export("browser-agent")) {
    exported += 1;
  }
  return {
    storedId: memory?.id ?? "",
    recalledId: top?.id ?? "",
    recalledContent: top?.content ?? "",
    score: top?.score ?? 0,
    exported,
    invalidCode: await codeOf(client.store({ agentId: "browser-agent", content: "" })),
    invalidField: await fieldOf(client.store({ agentId: "browser-agent", content: "" })),
    notFoundCode: await codeOf(client.get("no-such-memory")),
    unauthenticatedCode: await codeOf(new EngramClient({ transport, apiKey: "wrong" }).recall({ agentId: "browser-agent", query: "x" })),
    // The default browser transport (gRPC-Web) names the address it could not reach.
    unreachable: await errorOf(new EngramClient({ baseUrl: closedUrl, retries: 0 }).health()),
  };
}

(globalThis as unknown as { engramDemo: typeof demo }).engramDemo = demo;
