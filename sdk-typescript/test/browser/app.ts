// The page script of the browser test, bundled by esbuild for the browser: "engram-memory-client"
// resolves to the package's browser entry (gRPC-Web over fetch).
import { EngramClient, EngramError, MemoryType } from "engram-memory-client";

export interface DemoResult {
  storedId: string;
  recalledId: string;
  recalledContent: string;
  score: number;
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

async function errorOf(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
    return { code: "OK", message: "" };
  } catch (e) {
    return e instanceof EngramError ? { code: e.code, message: e.message } : { code: "not an EngramError", message: String(e) };
  }
}

async function demo(baseUrl: string, apiKey: string, closedUrl: string): Promise<DemoResult> {
  const client = new EngramClient({ baseUrl, apiKey });
  const { memory } = await client.store({
    agentId: "browser-agent",
    content: "The browser user wants weekly summaries on Fridays.",
    memoryType: MemoryType.SEMANTIC,
    importance: 0.9,
  });
  await client.store({ agentId: "browser-agent", content: "The office plant is a fern." });
  const { memories } = await client.recall({ agentId: "browser-agent", query: "when should summaries be sent?", topK: 1 });
  const top = memories[0];
  return {
    storedId: memory?.id ?? "",
    recalledId: top?.id ?? "",
    recalledContent: top?.content ?? "",
    score: top?.score ?? 0,
    notFoundCode: await codeOf(client.get("no-such-memory")),
    unauthenticatedCode: await codeOf(new EngramClient({ baseUrl, apiKey: "wrong" }).recall({ agentId: "browser-agent", query: "x" })),
    unreachable: await errorOf(new EngramClient({ baseUrl: closedUrl, retries: 0 }).health()),
  };
}

(globalThis as unknown as { engramDemo: typeof demo }).engramDemo = demo;
