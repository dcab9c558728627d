// Shared set-up for the end-to-end tests: the host under test, an API client and a browser.

import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const BASE = (process.env.RTE_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
export const TOKEN = process.env.RTE_TOKEN ?? "";
export const SHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
mkdirSync(SHOTS, { recursive: true });

/** Call the host's API; returns { status, body }. */
export async function api(path, { method = "GET", json, token = TOKEN } = {}) {
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(BASE + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
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
export async function startSaga(request, wait = "10s") {
  const { status, body } = await api(`/api/transactions${wait ? `?wait=${wait}` : ""}`, { method: "POST", json: request });
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
 * A page with the token in sessionStorage (when one is given) that records console errors.
 * Errors about `allowed` paths (endpoints the host lacks) are tolerated.
 */
export async function openPage(browser, { token = TOKEN, allowed = [], width = 1280, height = 860 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  if (token) await context.addInitScript((t) => sessionStorage.setItem("rte.admin_token", t), token);
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
