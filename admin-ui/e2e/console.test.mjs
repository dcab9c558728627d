// End-to-end: the embedded console against a running host (RTE_URL, optional RTE_TOKEN).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { api, BASE, launch, missingEndpoints, openPage, shot, startSaga, TOKEN, until } from "./helpers.mjs";

let browser;
let missing = [];
const data = {};

before(async () => {
  const health = await fetch(`${BASE}/healthz`).catch(() => null);
  assert.ok(health?.ok, `no host answers at ${BASE} (set RTE_URL)`);
  missing = await missingEndpoints();
  const suffix = Date.now().toString(36);
  data.ok = await startSaga({ tx_type: "open_account", input: { account_id: `ui-${suffix}`, balance: 1000 } });
  data.compensated = await startSaga({ steps: ["test_ok", "test_ok", "test_fail"], input: {} });
  data.failed = await startSaga({ steps: ["test_fail"], input: {} });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

async function visit(path, name, opts = {}) {
  const p = await openPage(browser, { allowed: missing, ...opts });
  await p.page.goto(BASE + path);
  await p.page.locator("h1").first().waitFor();
  return p;
}

async function settle(page) {
  await page.waitForLoadState("networkidle").catch(() => {});
  await page.waitForFunction(() => !document.querySelector(".spinner"), null, { timeout: 10000 }).catch(() => {});
}

describe("pages", { timeout: 120000 }, () => {
  const pages = [
    ["/", "dashboard", "Dashboard"],
    ["/transactions", "transactions", "Transactions"],
    ["/start", "start", "Start saga"],
    ["/events", "events", "Events"],
    ["/recovery", "recovery", "Recovery"],
    ["/circuit-breakers", "circuit-breakers", "Circuit breakers"],
    ["/plugins", "plugins", "Plugins"],
  ];
  for (const [path, name, title] of pages) {
    it(`${path} loads without console errors`, async (t) => {
      const { context, page, errors } = await visit(path, name);
      await settle(page);
      assert.equal(await page.locator("h1").first().textContent(), title);
      await shot(page, name);
      await context.close();
      if (missing.length) t.diagnostic(`host lacks ${missing.join(", ")}; those parts show an error state`);
      assert.deepEqual(errors, []);
    });
  }

  it("the recovery page lists the hosts, this one marked", async (t) => {
    if (missing.includes("/api/recovery/stats")) return t.skip("host has no recovery figures");
    const { body } = await api("/api/hosts");
    assert.equal(body?.hosts?.[0]?.this_host, true, "this host comes first in /api/hosts");
    const { context, page, errors } = await visit("/recovery", "recovery");
    await settle(page);
    const hosts = page.locator("section", { has: page.getByRole("heading", { name: "Hosts", exact: true }) });
    const rows = hosts.locator("tbody tr");
    assert.equal(await rows.count(), body.hosts.length);
    const marked = hosts.locator("tbody tr", { has: page.locator(".tag-this-host") });
    assert.equal(await marked.count(), 1);
    assert.equal((await marked.locator("th").textContent()).replace(/\s+/g, " ").trim(), `${body.hosts[0].host_id} this host`);
    assert.match(await marked.locator(".badge").textContent(), /^(Running|Stopped)$/);
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("the plugins page shows no version warning when every host agrees", async () => {
    const { body } = await api("/api/plugins");
    const { context, page, errors } = await visit("/plugins", "plugins");
    await settle(page);
    await page.locator(".plugin").first().waitFor();
    assert.equal(await page.locator(".plugin-mismatch").count(), body.same_on_every_host === false ? 1 : 0);
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("a deep link to a transaction loads directly", async () => {
    const { context, page, errors } = await visit(`/transactions/${data.ok.tx_id}`, "detail");
    await settle(page);
    await page.getByText(data.ok.tx_id).first().waitFor();
    assert.equal(await page.locator(".tx-title .badge").textContent(), "Completed");
    await shot(page, "detail-completed");
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("lays out at 1024 px without sideways scrolling", async () => {
    for (const [path, name] of [
      ["/", "dashboard"],
      ["/transactions", "transactions"],
      [`/transactions/${data.compensated.tx_id}`, "detail"],
      ["/start", "start"],
      ["/events", "events"],
      ["/plugins", "plugins"],
    ]) {
      const { context, page, errors } = await visit(path, name, { width: 1024 });
      await settle(page);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      await shot(page, `${name}-1024`);
      await context.close();
      assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the window`);
      assert.deepEqual(errors, []);
    }
  });
});

describe("transactions", { timeout: 120000 }, () => {
  it("filters COMPENSATED sagas through the URL", async () => {
    const { context, page, errors } = await visit("/transactions", "list");
    await settle(page);
    await page.getByRole("button", { name: "Compensated", exact: true }).click();
    await page.waitForURL(/status=COMPENSATED/);
    await settle(page);
    const row = page.locator("tr", { hasText: data.compensated.tx_id });
    await row.waitFor();
    assert.equal(await row.locator(".badge").textContent(), "Compensated");
    const statuses = await page.locator("tbody .badge").allTextContents();
    assert.ok(statuses.every((s) => s === "Compensated"), statuses.join(","));
    await shot(page, "transactions-compensated");

    // The id prefix search narrows to the one saga; the link is shareable.
    await page.getByLabel("Id starts with").fill(data.compensated.tx_id.slice(0, 30));
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/q=/);
    await settle(page);
    assert.equal(await page.locator("tbody tr").count(), 1);
    const url = page.url();
    await page.goto(url);
    await settle(page);
    assert.equal(await page.locator("tbody tr").count(), 1);
    assert.equal(await page.getByRole("button", { name: "Compensated", exact: true }).getAttribute("aria-pressed"), "true");
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("shows compensations in the timeline of a failed saga", async () => {
    const { context, page, errors } = await visit(`/transactions/${data.compensated.tx_id}`, "detail");
    await settle(page);
    await page.locator(".timeline svg").waitFor();
    assert.equal(await page.locator(".tx-title .badge").textContent(), "Compensated");
    assert.equal(await page.locator(".timeline .bar-execute").count(), 3);
    assert.equal(await page.locator(".timeline .bar-compensate").count(), 2);
    assert.ok((await page.locator(".timeline .marker").count()) >= 1, "the failure is marked");
    const stepStatuses = await page.locator("table.steps tbody .badge").allTextContents();
    assert.deepEqual(stepStatuses, ["Compensated", "Compensated", "Failed"]);
    await page.getByText("test_fail: permanent failure").first().waitFor();
    await shot(page, "detail-compensated");
    await context.close();
    assert.deepEqual(errors, []);
  });
});

describe("actions", { timeout: 120000 }, () => {
  const actionAllowed = () => [...missing, "/force-cancel", "/force-complete", "/retry"];

  /** Open a saga's page, run `action` through its dialog, and return the page. */
  async function act(t, txId, button, confirm, reason, fill) {
    const probe = await api(`/api/transactions/${txId}/${button.toLowerCase().replace(/ /g, "-").replace("…", "")}`, { method: "OPTIONS" });
    if (probe.status === 404 && /endpoint/.test(probe.body?.error?.message ?? "")) {
      t.skip(`host has no ${button} endpoint`);
      return null;
    }
    const p = await visit(`/transactions/${txId}`, "detail", { allowed: actionAllowed() });
    await settle(p.page);
    await p.page.getByRole("button", { name: `${button}…` }).click();
    const dialog = p.page.getByRole("dialog");
    if (fill) await fill(dialog);
    await dialog.getByLabel(/Reason/).fill(reason);
    await dialog.getByRole("button", { name: confirm, exact: true }).click();
    await p.page.locator(".notice, .form-error").first().waitFor();
    const formError = p.page.locator(".form-error");
    assert.equal(await formError.count(), 0, (await formError.count()) ? await formError.textContent() : "");
    return p;
  }

  const badge = (page) => page.locator(".tx-title .badge").textContent();

  it("force-cancels a failed saga", async (t) => {
    const failed = await startSaga({ steps: ["test_fail"], input: {} });
    const p = await act(t, failed.tx_id, "Force cancel", "Force cancel", "e2e: cancel a failed saga");
    if (!p) return;
    await until(async () => (await badge(p.page)) === "Cancelled", "the saga to be cancelled");
    await p.page.getByText("e2e: cancel a failed saga").first().waitFor();
    await shot(p.page, "detail-cancelled");
    await p.context.close();
    assert.deepEqual(p.errors, []);
  });

  it("force-completes a failed saga", async (t) => {
    const failed = await startSaga({ steps: ["test_fail"], input: {} });
    const p = await act(t, failed.tx_id, "Force complete", "Force complete", "e2e: settled by hand");
    if (!p) return;
    await until(async () => (await badge(p.page)) === "Completed", "the saga to be completed");
    await p.context.close();
    assert.deepEqual(p.errors, []);
  });

  it("force-cancels a running saga and follows it live", async (t) => {
    const running = await startSaga({ steps: ["test_ok", "test_sleep", "test_ok"], input: { sleep_ms: 6000 } }, "");
    const p = await act(t, running.tx_id, "Force cancel", "Force cancel", "e2e: cancel a running saga");
    if (!p) return;
    // The page follows the saga from the event stream, without a reload.
    await until(async () => !["Created", "Locked", "Executing"].includes(await badge(p.page)), "the page to show the cancellation");
    await until(async () => (await badge(p.page)) === "Cancelled", "the compensation to finish and the saga to be cancelled", 20000);
    await shot(p.page, "detail-force-cancel-running");
    await p.context.close();
    assert.deepEqual(p.errors, []);
  });

  it("retries a failed saga from a chosen step", async (t) => {
    const version = data.failed.version;
    const p = await act(t, data.failed.tx_id, "Retry", "Retry", "e2e: retry", (dialog) => dialog.getByLabel("From step").selectOption("0"));
    if (!p) return;
    const after = await api(`/api/transactions/${data.failed.tx_id}`);
    assert.ok(after.body.version > version, "the retry changed the saga");
    await p.page.locator(".history-mark").first().waitFor();
    await shot(p.page, "detail-retried");
    await p.context.close();
    assert.deepEqual(p.errors, []);
  });

  it("resets a circuit breaker", async () => {
    const list = await api("/api/circuit-breakers");
    const breaker = list.body.circuit_breakers.find((b) => b.total_failures > 0) ?? list.body.circuit_breakers[0];
    assert.ok(breaker, "a breaker exists after a failed step");
    const { context, page, errors } = await visit("/circuit-breakers", "circuit-breakers");
    await settle(page);
    await page.getByRole("button", { name: `Reset breaker ${breaker.service}` }).click();
    await page.getByText(`Breaker for ${breaker.service} reset to closed.`).waitFor();
    const row = page.locator("tr", { hasText: breaker.service });
    assert.equal(await row.locator(".badge").textContent(), "Closed");
    await context.close();
    assert.deepEqual(errors, []);
  });
});

describe("live and forms", { timeout: 120000 }, () => {
  it("the events page receives live events", async (t) => {
    if (missing.includes("/api/events/stream")) return t.skip("host has no event stream");
    const { context, page, errors } = await visit("/events", "events");
    await page.locator(".live-live").waitFor({ timeout: 10000 });
    const tx = await startSaga({ steps: ["test_ok"], input: { from: "events-e2e" } });
    await page.locator("tr", { hasText: tx.tx_id }).first().waitFor({ timeout: 10000 });

    // Paused, new events are held back and counted.
    await page.getByRole("button", { name: "Pause" }).click();
    const held = await startSaga({ steps: ["test_ok"], input: {} });
    await page.getByText(/Paused · \d+ new/).waitFor();
    assert.equal(await page.locator("tr", { hasText: held.tx_id }).count(), 0);
    await page.getByRole("button", { name: "Resume" }).click();
    await page.locator("tr", { hasText: held.tx_id }).first().waitFor();

    await page.getByLabel("Type").selectOption("tx.completed");
    const types = await page.locator("tbody .badge").allTextContents();
    assert.ok(types.length > 0 && types.every((x) => x === "tx.completed"), types.join(","));
    await shot(page, "events-live");
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("starts a saga from the form and links to it", async () => {
    const { context, page, errors } = await visit("/start", "start");
    await settle(page);
    await page.getByRole("radio", { name: /Ad hoc/ }).check();
    await page.getByLabel("Steps, in order").fill("test_ok, test_ok");
    await page.getByLabel("Input (JSON)").fill('{"note": "from the console"}');
    await page.getByRole("button", { name: "Start saga" }).click();
    const link = page.getByRole("link", { name: "Open transaction" });
    await link.waitFor();
    await shot(page, "start-result");
    await link.click();
    await page.locator(".tx-title .badge", { hasText: "Completed" }).waitFor();
    assert.match(page.url(), /\/transactions\/[^/]+$/);
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("rejects invalid JSON input before sending", async () => {
    const { context, page } = await visit("/start", "start");
    await settle(page);
    await page.getByLabel("Input (JSON)").fill("{oops");
    await page.getByText(/Invalid JSON/).waitFor();
    assert.equal(await page.getByRole("button", { name: "Start saga" }).isDisabled(), true);
    await context.close();
  });

  it("asks for the token when the API requires one", async (t) => {
    if (!TOKEN) return t.skip("RTE_TOKEN not set");
    const { context, page } = await openPage(browser, { token: "" });
    await page.goto(BASE + "/");
    const dialog = page.getByRole("dialog", { name: "Admin token required" });
    await dialog.waitFor();
    await shot(page, "token-prompt");
    await dialog.getByLabel("Token").fill(TOKEN);
    await dialog.getByRole("button", { name: "Continue" }).click();
    await page.locator(".card-value").first().waitFor();
    await context.close();
  });
});
