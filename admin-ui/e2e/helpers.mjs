// Shared set-up for the end-to-end tests: the host under test, an API client and a browser.

import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const BASE = (process.env.RTE_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
export const TOKEN = process.env.RTE_TOKEN ?? "";
export const SHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
mkdirSync(SHOTS, { recursive: true });

/** Call the host's API (the host under test, or the one at `base`); returns { status, body }. */
export async function api(path, { method = "GET", json, token = TOKEN, base = BASE } = {}) {
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

/** Start a saga and wait (up to 10 s) for its outcome. */
export async function startSaga(request, wait = "10s", base = BASE) {
  const { status, body } = await api(`/api/transactions${wait ? `?wait=${wait}` : ""}`, { method: "POST", json: request, base });
  if (status !== 201 && status !== 200) throw new Error(`starting a saga gave ${status}: ${JSON.stringify(body)}`);
  return body;
}

/** Poll `fn` until it returns a truthy value. */
export async function until(fn, what, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Endpoints of the contract this host does not serve (the console shows an error state for them). */
export async function missingEndpoints() {
  const paths = ["/api/stats/timeline?hours=24", "/api/recovery/stats", "/api/sagas"];
  const missing = [];
  for (const p of paths) {
    const { status, body } = await api(p);
    if (status === 404 && /endpoint/.test(body?.error?.message ?? "")) missing.push(p.split("?")[0]);
  }
  const stream = await fetch(`${BASE}/api/events/stream${TOKEN ? `?access_token=${encodeURIComponent(TOKEN)}` : ""}`, {
    signal: AbortSignal.timeout(3000),
  }).catch(() => null);
  if (!stream || !String(stream.headers.get("content-type")).startsWith("text/event-stream")) missing.push("/api/events/stream");
  stream?.body?.cancel().catch(() => {});
  return missing;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A page with the token stored as the console keeps it (when one is given) that records console errors.
 * Errors about `allowed` paths (endpoints the host lacks) are tolerated.
 */
export async function openPage(browser, { token = TOKEN, allowed = [], width = 1280, height = 860 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  if (token) await context.addInitScript((t) => localStorage.setItem("rte.admin_token", JSON.stringify({ token: t, expires: Date.now() + 3_600_000 })), token);
  const page = await context.newPage();
  const errors = [];
  const tolerated = (text) => allowed.some((p) => text.includes(p)) || /EventSource/.test(text) && allowed.includes("/api/events/stream");
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const where = m.location()?.url ?? "";
    const text = `${m.text()} ${where}`;
    if (!tolerated(text)) errors.push(text);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 500) errors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  return { context, page, errors };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The `rte` binary and example plugins the host under test runs (as scripts/with-host.sh
 * finds them: under CARGO_TARGET_DIR, or target/), or null when they are not here (a host
 * elsewhere, given by RTE_URL only). RTE_BIN names another binary.
 */
export function hostBuild() {
  const target = resolve(ROOT, process.env.CARGO_TARGET_DIR || "target");
  const binary = process.env.RTE_BIN || join(target, "debug", "rte");
  const plugins = ["bank", "testkit"].map((p) => join(target, "plugins", "wasm32-wasip2", "release", `${p}.wasm`));
  return existsSync(binary) && plugins.every((p) => existsSync(p)) ? { binary, plugins } : null;
}

async function freePort() {
  const server = createServer();
  await new Promise((ok, fail) => server.once("error", fail).listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/**
 * A scratch place for hosts of a test's own: a SQLite database and a plugins folder that
 * outlive any one host, so a host can be stopped and another started on the same data.
 * The host under test cannot be restarted from here: the script that started it owns it.
 */
export function hostDir(build) {
  const dir = mkdtempSync(join(tmpdir(), "rte-e2e-"));
  mkdirSync(join(dir, "plugins"));
  for (const p of build.plugins) copyFileSync(p, join(dir, "plugins", basename(p)));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Start `rte serve` on `dir`'s database (with the same admin token as the host under test)
 * and wait until it is ready. `settings` are `--set` values. `stop(signal)` ends it:
 * SIGKILL is a crash, as a host that loses its machine.
 */
export async function startHost(build, dir, settings = []) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, "host.log");
  const log = openSync(logFile, "a");
  const args = ["serve", "--listen", `127.0.0.1:${port}`, "--database-url", `sqlite://${join(dir, "host.db")}`];
  args.push("--plugins-dir", join(dir, "plugins"), "--sagas-file", join(ROOT, "sagas.toml"));
  if (TOKEN) args.push("--admin-token", TOKEN);
  for (const s of settings) args.push("--set", s);
  const child = spawn(build.binary, args, { cwd: dir, stdio: ["ignore", log, log] });
  const exited = new Promise((ok) => child.once("exit", ok));
  const stop = async (signal = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const logTail = () => readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n");
  try {
    await until(async () => {
      if (child.exitCode !== null) throw new Error(`the host exited with ${child.exitCode}`);
      const r = await fetch(`${url}/readyz`).catch(() => null);
      return r?.ok;
    }, `a host at ${url} to be ready`, 60000);
  } catch (e) {
    await stop("SIGKILL");
    throw new Error(`${e.message}; its log ends:\n${logTail()}`);
  }
  return { url, stop, logTail };
}
