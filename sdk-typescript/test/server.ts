// Starts a real engram-server for the integration and browser tests, per docs/design/contracts.md:
// a free loopback port, a fresh data dir, a random encryption key, --grpc-port 0, a root API key.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file runs from sdk-typescript/build/test/). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export interface RunningServer {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  /** The root (admin) key given with --api-key. */
  apiKey: string;
  /** What the server printed so far. */
  logs(): string;
  stop(): Promise<void>;
}

/** Binds port 0 on the loopback, closes, and returns the port it got. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function serverBinary(): string {
  return process.env["ENGRAM_SERVER_BIN"] ?? join(REPO_ROOT, ".venv", "bin", "engram-server");
}

export async function startServer(options: { corsOrigins?: string } = {}): Promise<RunningServer> {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`engram-server not found at ${bin} (build the server, or set ENGRAM_SERVER_BIN)`);
  }
  const port = await freePort();
  const dataDir = await mkdtemp(join(tmpdir(), "engram-ts-test-"));
  const apiKey = `root-${randomBytes(16).toString("hex")}`;
  const args = [
    "serve",
    "--host", "127.0.0.1",
    "--port", String(port),
    "--grpc-port", "0",
    "--data-dir", dataDir,
    "--api-key", apiKey,
  ];
  if (options.corsOrigins !== undefined) {
    args.push("--cors-origins", options.corsOrigins);
  }
  const child: ChildProcess = spawn(bin, args, {
    env: { ...process.env, ENGRAM_ENCRYPTION_KEY: randomBytes(32).toString("hex") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => { output += d.toString(); });
  child.stderr?.on("data", (d: Buffer) => { output += d.toString(); });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on("exit", () => { exited = true; resolve(); }));

  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(timer);
    }
    await rm(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`engram-server exited before it was healthy:\n${output}`);
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`engram-server was not healthy within 60 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { url, port, apiKey, logs: () => output, stop };
}
