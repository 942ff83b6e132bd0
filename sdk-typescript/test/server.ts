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
  /** What the server printed so far (every run of it). */
  logs(): string;
  /**
   * Stops the server and starts it again on the same port, data directory, encryption key and
   * options; resolves once it is healthy. `downMs` waits that long between the two; `hard` kills
   * it (SIGKILL: connections drop mid-stream) instead of stopping it (SIGTERM).
   */
  restart(options?: { downMs?: number; hard?: boolean }): Promise<void>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** `--cors-origins`. */
  corsOrigins?: string;
  /** More `engram-server serve` arguments, e.g. `["--max-retained-events", "3"]`. */
  args?: string[];
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

/** One process of the server. */
interface Process {
  exited(): boolean;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`engram-server not found at ${bin} (build the server, or set ENGRAM_SERVER_BIN)`);
  }
  const port = await freePort();
  const dataDir = await mkdtemp(join(tmpdir(), "engram-ts-test-"));
  const apiKey = `root-${randomBytes(16).toString("hex")}`;
  const encryptionKey = randomBytes(32).toString("hex");
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
  args.push(...(options.args ?? []));
  let output = "";
  const url = `http://127.0.0.1:${port}`;

  const spawnOne = (): Process => {
    const child: ChildProcess = spawn(bin, args, {
      env: { ...process.env, ENGRAM_ENCRYPTION_KEY: encryptionKey },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (d: Buffer) => { output += d.toString(); });
    child.stderr?.on("data", (d: Buffer) => { output += d.toString(); });
    let exited = false;
    const exit = new Promise<void>((resolve) => child.on("exit", () => { exited = true; resolve(); }));
    return {
      exited: () => exited,
      kill: async (signal: NodeJS.Signals = "SIGTERM") => {
        if (!exited) {
          child.kill(signal);
          const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exit;
          clearTimeout(timer);
        }
      },
    };
  };

  const waitHealthy = async (proc: Process): Promise<void> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exited()) {
        throw new Error(`engram-server exited before it was healthy:\n${output}`);
      }
      try {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
        if (res.status === 200) {
          return;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        throw new Error(`engram-server was not healthy within 60 s:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  let proc = spawnOne();
  const stop = async (): Promise<void> => {
    await proc.kill();
    await rm(dataDir, { recursive: true, force: true });
  };
  const restart = async ({ downMs = 0, hard = false }: { downMs?: number; hard?: boolean } = {}): Promise<void> => {
    await proc.kill(hard ? "SIGKILL" : "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, downMs));
    proc = spawnOne();
    await waitHealthy(proc);
  };
  try {
    await waitHealthy(proc);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, port, apiKey, logs: () => output, restart, stop };
}
