// Browser test: a real headless Chromium loads a page (served from another loopback port, so CORS
// is real) that bundles the SDK's browser entry and stores, recalls and exports through the
// Connect protocol (connect-web's createConnectTransport: JSON over fetch).
import { after, before, beforeEach, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium, type BrowserContext, type Request } from "playwright-core";
import { freePort, startServer, type RunningServer } from "./server.js";
import type { DemoResult } from "./browser/app.js";

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const sdkDir = fileURLToPath(new URL("../../", import.meta.url));

let engram: RunningServer;
let staticServer: Server;
let pageUrl: string;
let context: BrowserContext;
let userDataDir: string;

let setupError: unknown;

before(async () => {
  try {
    await setUp();
  } catch (e) {
    setupError = e;
  }
});

// Failed set-up fails the test (rather than cancelling it), with the cause.
beforeEach(() => {
  if (setupError !== undefined) {
    throw setupError;
  }
});

async function setUp(): Promise<void> {
  engram = await startServer({ corsOrigins: "*" });
  const bundle = await build({
    entryPoints: [join(sdkDir, "test/browser/app.ts")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    absWorkingDir: sdkDir,
    logLevel: "silent",
  });
  const js = bundle.outputFiles[0]!.text;
  assert.ok(!js.includes("node:http2"), "the browser bundle carries no Node transport");
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Engram over Connect</title></head>
<body><script type="module" src="/app.js"></script></body></html>`;
  staticServer = createServer((req, res) => {
    if (req.url === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    } else if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html" }).end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await freePort();
  await new Promise<void>((resolve) => staticServer.listen(port, "127.0.0.1", resolve));
  pageUrl = `http://127.0.0.1:${port}/`;
  userDataDir = await mkdtemp(join(tmpdir(), "engram-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

after(async () => {
  await context?.close();
  if (staticServer !== undefined) {
    await new Promise((resolve) => staticServer.close(resolve));
  }
  await engram?.stop();
  if (userDataDir !== undefined) {
    await rm(userDataDir, { recursive: true, force: true });
  }
});

it("stores, recalls and exports over Connect from a cross-origin page in headless Chromium", async () => {
  const page = await context.newPage();
  const connectRequests: Request[] = [];
  page.on("request", (req) => {
    if (req.url().startsWith(engram.url) && req.method() === "POST") {
      connectRequests.push(req);
    }
  });
  const consoleErrors: string[] = [];
  page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });
  await page.goto(pageUrl);
  await page.waitForFunction(() => "engramDemo" in globalThis);
  const closedPort = await freePort(); // nothing listens there
  const result = await page.evaluate(
    ([baseUrl, apiKey, closedUrl]) =>
      (globalThis as unknown as { engramDemo: (b: string, k: string, c: string) => Promise<DemoResult> }).engramDemo(baseUrl!, apiKey!, closedUrl!),
    [engram.url, engram.apiKey, `127.0.0.1:${closedPort}/`],
  );
  assert.ok(result.storedId.length > 0, "stored a memory");
  assert.equal(result.recalledId, result.storedId);
  assert.equal(result.recalledContent, "The browser user wants weekly summaries on Fridays.");
  assert.ok(result.score > 0);
  assert.equal(result.exported, 2, "the server stream (ExportMemories) delivered both memories");
  assert.equal(result.invalidCode, "INVALID_ARGUMENT");
  assert.equal(result.invalidField, "content", "the BadRequest detail arrives decoded");
  assert.equal(result.notFoundCode, "NOT_FOUND");
  assert.equal(result.unauthenticatedCode, "UNAUTHENTICATED");
  // A closed port: UNAVAILABLE naming the normalised address and Chromium's wording.
  console.log(`refused (browser): ${result.unreachable.code}: ${result.unreachable.message}`);
  assert.equal(result.unreachable.code, "UNAVAILABLE");
  assert.ok(
    result.unreachable.message.startsWith(`cannot connect to http://127.0.0.1:${closedPort} (network error: Failed to fetch): is the Engram server running?`),
    result.unreachable.message,
  );
  // The calls really were cross-origin Connect: unary JSON, and one JSON stream (the export).
  assert.ok(connectRequests.length >= 6, `saw ${connectRequests.length} Connect requests`);
  const types = new Set<string>();
  for (const r of connectRequests) {
    const headers = await r.allHeaders();
    types.add(headers["content-type"] ?? "");
    assert.equal(headers["connect-protocol-version"], "1");
    assert.equal(headers["origin"], pageUrl.slice(0, -1), "sent from the page's origin, another port");
  }
  assert.deepEqual([...types].sort(), ["application/connect+json", "application/json"]);
  assert.deepEqual(consoleErrors.filter((e) => /CORS/i.test(e)), []);
});
