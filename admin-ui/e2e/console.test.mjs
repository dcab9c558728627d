// End-to-end: the embedded console against a running host (RTE_URL, optional RTE_TOKEN).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { api, BASE, hostBuild, hostDir, launch, missingEndpoints, openPage, shot, startHost, startSaga, TOKEN, until } from "./helpers.mjs";

let browser;
let missing = [];
const data = {};

before(async () => {
  const health = await fetch(`${BASE}/healthz`).catch(() => null);
  assert.ok(health?.ok, `no host answers at ${BASE} (set RTE_URL)`);
  missing = await missingEndpoints();
  const suffix = Date.now().toString(36);
  data.ok = await startSaga({ tx_type: "open_account", input: { account_id: `ui-${suffix}`, balance: 1000 } });
  data.compensatedAccount = `ui-comp-${suffix}`;
  data.compensated = await startSaga({ steps: ["test_ok", "test_ok", "test_fail"], input: { account_id: data.compensatedAccount } });
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

/** The text of a field of the detail page. */
async function field(page, label) {
  const dd = page.locator(".field", { has: page.locator("dt", { hasText: new RegExp(`^${label}$`) }) }).locator("dd").first();
  return (await dd.textContent()).replace(/\s+/g, " ").trim();
}

/** Each timeline row's execute bars, by outcome: [["completed"], ["failed", "completed"], …]. */
async function executeOutcomes(page) {
  return page.locator(".timeline .timeline-row").evaluateAll((rows) =>
    rows.map((r) => [...r.querySelectorAll("rect.bar-execute")].map((b) => [...b.classList].find((c) => c.startsWith("outcome-")).slice("outcome-".length))),
  );
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
});

describe("transactions", { timeout: 120000 }, () => {
  it("says a page past the end is past the end, and goes to the last one", async () => {
    const { context, page, errors } = await visit("/transactions?page=99", "list");
    await settle(page);
    await page.getByText("Page 99 is past the end").waitFor();
    assert.equal(await page.getByText("No transactions yet").count(), 0);
    await page.getByRole("button", { name: "Go to the last page" }).click();
    await page.waitForURL((u) => !/page=99/.test(u.toString()));
    await page.locator("tbody tr").first().waitFor();
    await context.close();
    assert.deepEqual(errors, []);
  });

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

    // A search by part of the id (from its middle) narrows to the one saga; so does one by
    // the saga's input; the link is shareable.
    await page.getByLabel("Search").fill(data.compensated.tx_id.slice(14, 30));
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/q=/);
    await settle(page);
    assert.equal(await page.locator("tbody tr").count(), 1);
    await page.getByLabel("Search").fill(`account_id=${data.compensatedAccount}`);
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/input\.account_id=/);
    await settle(page);
    assert.equal(await page.locator("tbody tr").count(), 1);
    assert.equal(await page.getByLabel("Search").inputValue(), `account_id=${data.compensatedAccount}`);
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
    // The kind comes from its own field, the message as the step gave it.
    const failed = page.locator("table.steps tbody tr").nth(2).locator(".err-cell");
    assert.equal(await failed.locator(".tag").textContent(), "permanent");
    assert.equal((await failed.textContent()).trim(), "permanent test_fail: permanent failure");
    // Where it failed, although compensation walked back to the first step.
    assert.match(await field(page, "Step"), /^Failed at step 3 of 3 \(test_fail\)/);
    await shot(page, "detail-compensated");
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("shows a parallel group while its branches run, then the order they completed in", async () => {
    const group = { parallel: ["test_branch", "test_branch", "test_branch"] };
    const running = await startSaga({ steps: ["test_ok", group, "test_ok"], input: { sleep_ms: 4000 } }, "");
    const { context, page, errors } = await visit(`/transactions/${running.tx_id}`, "detail-parallel");
    await until(async () => /^Steps 2–4 of 5 \(a parallel group\) ?3 branches running/.test(await field(page, "Step")), "the group shown running", 10000);
    const marks = await page.locator("table.steps tbody tr td:nth-child(2) .sub:not(.narrow-only)").allTextContents();
    assert.equal(marks.filter((m) => m.startsWith("∥ parallel, steps 2–4")).length, 3, marks.join(" | "));
    await shot(page, "detail-parallel-running");
    await until(async () => (await page.locator(".tx-title .badge").textContent()) === "Completed", "the saga completed", 20000);
    await until(async () => (await page.getByText(/∥ parallel, steps 2–4 · completed (2nd|3rd|4th)/).count()) === 3, "completion order shown", 10000);
    await context.close();
    assert.deepEqual(errors, []);
  });
});

describe("waiting steps", { timeout: 120000 }, () => {
  it("shows a waiting step's correlation id and deadline, and answers it by hand", async () => {
    const waiting = await startSaga({ steps: ["test_wait"], input: { wait_ms: 120000 } }, "");
    const { context, page, errors } = await visit(`/transactions/${waiting.tx_id}`, "detail-waiting");
    await until(async () => (await page.locator(".wait-info").count()) === 1, "the wait shown", 15000);
    const info = (await page.locator(".wait-info").textContent()).replace(/\s+/g, " ");
    assert.ok(info.includes(`waits for ${waiting.tx_id}:test_wait:0:1 until`), info);
    await shot(page, "detail-waiting");
    await page.getByRole("button", { name: "Answer…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Payload (JSON)").fill("{not json");
    await dialog.getByLabel(/Reason/).fill("e2e: approved by hand");
    await dialog.getByRole("button", { name: "Send answer", exact: true }).click();
    await dialog.locator(".form-error").waitFor();
    assert.match(await dialog.locator(".form-error").textContent(), /not JSON/);
    await dialog.getByLabel("Payload (JSON)").fill('{"approved": true}');
    await dialog.getByRole("button", { name: "Send answer", exact: true }).click();
    await until(async () => (await page.locator(".tx-title .badge").textContent()) === "Completed", "the saga completed", 20000);
    const tx = await api(`/api/transactions/${waiting.tx_id}`);
    assert.deepEqual(tx.body.output.reply, { approved: true });
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
    // The history line names the operator and their reason.
    const line = p.page.locator(".history-line", { hasText: "force cancel" });
    assert.match((await line.locator(".actor").textContent()).replace(/\s+/g, " "), /^by operator: .?e2e: cancel a failed saga.?$/);
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

  it("force-cancels every saga a filter selects, after a preview, saga by saga", async () => {
    const type = `bulk_e2e_${Date.now().toString(36)}`;
    const made = [];
    for (let i = 0; i < 3; i++) made.push(await startSaga({ tx_type: type, steps: ["test_fail"], input: {} }));
    const { context, page, errors } = await visit(`/transactions?status=FAILED&tx_type=${type}`, "bulk");
    await settle(page);
    await page.getByRole("button", { name: "Bulk actions…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("3 sagas (Failed) will be acted on.").waitFor();
    await dialog.getByLabel("Force cancel").check();
    const go = dialog.getByRole("button", { name: "Force cancel 3 sagas" });
    assert.equal(await go.isDisabled(), true, "a reason is required");
    await dialog.getByLabel("Reason").fill("e2e: bulk cleanup");
    await go.click();
    await dialog.getByText("3 accepted, 0 refused.").waitFor();
    assert.equal(await dialog.locator("tbody tr.bulk-ok").count(), 3);
    await shot(page, "bulk-result");
    for (const tx of made) {
      const { body } = await api(`/api/transactions/${tx.tx_id}`);
      assert.equal(body.status, "CANCELLED");
    }
    await dialog.getByRole("button", { name: "Close" }).click();
    await page.getByText("No transactions match these filters").waitFor();
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("resets a circuit breaker", async () => {
    const list = await api("/api/circuit-breakers");
    const breaker = list.body.circuit_breakers.find((b) => b.total_failures > 0) ?? list.body.circuit_breakers[0];
    assert.ok(breaker, "a breaker exists after a failed step");
    const { context, page, errors } = await visit("/circuit-breakers", "circuit-breakers");
    await settle(page);
    await page.getByRole("button", { name: `Reset breaker ${breaker.service}` }).click();
    // A confirmation that needs a reason, which the host records in a circuit.reset event.
    const dialog = page.getByRole("dialog");
    assert.equal(await dialog.getByRole("button", { name: "Reset breaker" }).isDisabled(), true);
    await dialog.getByLabel("Reason").fill("e2e: the supplier is back");
    await dialog.getByRole("button", { name: "Reset breaker" }).click();
    await page.getByText(`Breaker for ${breaker.service} reset to closed.`).waitFor();
    const events = await api("/api/events?type=circuit.reset");
    const recorded = events.body.events.find((e) => e.data.service === breaker.service);
    assert.equal(recorded?.data.reason, "e2e: the supplier is back");
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

    // The host filters: the page's address and the list follow the choice.
    await page.getByLabel("Type").selectOption("tx.completed");
    await page.waitForURL(/\/events\?type=tx\.completed$/);
    await page.waitForFunction(() => {
      const badges = [...document.querySelectorAll("tbody .badge")].map((b) => b.textContent);
      return badges.length > 0 && badges.every((x) => x === "tx.completed");
    });
    // A live event of that type still arrives; one of another type does not.
    const next = await startSaga({ steps: ["test_ok"], input: {} });
    await page.locator("tr", { hasText: next.tx_id }).first().waitFor({ timeout: 10000 });
    const types = await page.locator("tbody .badge").allTextContents();
    assert.ok(types.every((x) => x === "tx.completed"), types.join(","));
    await shot(page, "events-live");
    await context.close();
    assert.deepEqual(errors, []);
  });

  it("pages through the host's event log and filters it by saga", async () => {
    // More step events than a page (100) holds.
    const batch = [];
    for (let i = 0; i < 30; i++) batch.push(startSaga({ steps: ["test_ok", "test_ok", "test_ok", "test_ok"], input: { i } }));
    const sagas = await Promise.all(batch);
    const { context, page, errors } = await visit("/events?type=step.completed", "events-paged");
    await settle(page);
    assert.ok((await page.locator("tbody tr").count()) >= 100);
    assert.match(await page.locator(".events-count").textContent(), /^\d[\d,]* events match/);
    await page.getByRole("button", { name: "Older ›" }).click();
    await page.waitForURL(/page=2/);
    await page.locator(".live", { hasText: "Older events" }).waitFor();
    await settle(page);
    assert.ok((await page.locator("tbody tr").count()) > 0);
    const first = await page.locator("tbody tr").first().textContent();
    await page.getByRole("button", { name: "‹ Newer" }).click();
    await page.waitForURL((u) => !u.search.includes("page="));
    // The URL changes before the newer page is drawn: wait for the table to follow.
    await until(async () => (await page.locator("tbody tr").first().textContent()) !== first, "the newer page drawn", 10000);
    assert.notEqual(await page.locator("tbody tr").first().textContent(), first);

    // One saga's events, by part of its id.
    const id = sagas[3].tx_id;
    await page.getByLabel("Transaction id").fill(id.slice(-12));
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/tx=/);
    await page.waitForFunction((n) => document.querySelectorAll("tbody tr").length === n, 4);
    const ids = await page.locator("tbody .tx-link").allTextContents();
    assert.deepEqual([...new Set(ids)], [id]);
    await shot(page, "events-paged");
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

  it("preselects no saga type, and shows a start that failed as a failure", async () => {
    const { context, page, errors } = await visit("/start", "start");
    await settle(page);
    assert.equal(await page.locator('input[name="saga-type"]:checked').count(), 0, "nothing preselected");
    assert.equal(await page.getByRole("button", { name: "Start saga" }).isDisabled(), true);
    await page.getByRole("radio", { name: /Ad hoc/ }).check();
    await page.getByLabel("Steps, in order").fill("test_ok, test_fail");
    await page.getByRole("button", { name: "Start saga" }).click();
    const alert = page.locator(".result[role=alert]");
    await alert.waitFor();
    assert.match(await alert.textContent(), /did not complete/);
    await shot(page, "start-failed");
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

    // Another tab of the same browser uses the token without asking again...
    const other = await context.newPage();
    await other.goto(BASE + "/transactions");
    await other.locator("table.tx-table").waitFor();
    assert.equal(await other.getByRole("dialog", { name: "Admin token required" }).count(), 0);
    // ...and forgetting it in one tab forgets it in every tab, hiding what was loaded.
    await page.getByRole("button", { name: "Forget token" }).click();
    await other.getByRole("dialog", { name: "Admin token required" }).waitFor();
    await other.getByText("Token forgotten").waitFor();
    assert.equal(await other.locator("table.tx-table").count(), 0);
    assert.equal(await page.locator(".card-value").count(), 0);
    assert.equal(await page.evaluate(() => localStorage.getItem("rte.admin_token")), null);
    await context.close();
  });
});

describe("durable history", { timeout: 180000 }, () => {
  const FLAKY = { steps: ["test_ok", "test_flaky", "test_ok"], input: { flaky_times: 1 } };
  const summary = (tx) => tx.attempts.map((a) => [a.step_index, a.step_name, a.phase, a.attempt, a.outcome, a.failure_kind]);
  const FLAKY_ATTEMPTS = [
    [0, "test_ok", "execute", 1, "completed", null],
    [1, "test_flaky", "execute", 1, "failed", "retryable"],
    [1, "test_flaky", "execute", 2, "completed", null],
    [2, "test_ok", "execute", 1, "completed", null],
  ];

  /** The detail page of a flaky saga: bars on their own rows although a step name repeats. */
  async function checkFlakyPage(page, tx) {
    await page.locator(".timeline svg").waitFor();
    await page.locator(".timeline .bar-execute").nth(3).waitFor();
    assert.deepEqual(await executeOutcomes(page), [["completed"], ["failed", "completed"], ["completed"]]);
    const failedBar = page.locator('.timeline-row[data-step="1"] rect.outcome-failed');
    assert.equal(await failedBar.getAttribute("data-failure-kind"), "retryable");
    const tip = await failedBar.locator("title").textContent();
    assert.match(tip, /test_flaky: execute attempt 1, failed \(retryable\): test_flaky: attempt 1 of 1 failing attempts/);
    assert.ok(tip.includes(`host ${tx.attempts[1].host}`), tip);
    if (tx.attempts[1].plugin_digest) assert.ok(tip.includes(tx.attempts[1].plugin_digest), tip);
    assert.equal(await page.locator("table.attempts tbody tr").count(), 4);
    assert.equal(await page.locator('table.attempts tbody tr[data-step="1"].outcome-failed .tag').textContent(), "retryable");
    assert.equal(await field(page, "Retries"), `0 of ${tx.max_retries}`);
  }

  /** A saga's detail page with the host's event log hidden from it: what it shows comes from the saga. */
  async function detailWithoutEvents(base, txId) {
    const p = await openPage(browser, { allowed: missing });
    await p.context.route(/\/api\/events\?/, (route) => route.fulfill({ json: { events: [] } }));
    await p.page.goto(`${base}/transactions/${txId}`);
    await settle(p.page);
    await p.page.getByText("The host holds no recent events for this saga.").waitFor();
    return p;
  }

  it("draws the timeline from the saga's stored attempts, not the event log", async () => {
    const tx = await startSaga(FLAKY);
    assert.equal(tx.status, "COMPLETED", JSON.stringify(tx));
    const { body } = await api(`/api/transactions/${tx.tx_id}`);
    assert.deepEqual(summary(body), FLAKY_ATTEMPTS);
    const p = await detailWithoutEvents(BASE, tx.tx_id);
    await checkFlakyPage(p.page, body);
    await shot(p.page, "detail-flaky");
    await p.context.close();
    assert.deepEqual(p.errors, []);
  });

  it("shows the same timeline after the host restarts, and labels recovery's actions as recovery", async (t) => {
    const build = hostBuild();
    if (!build) return t.skip("no rte binary and plugins here to start a host of the test's own (set CARGO_TARGET_DIR or RTE_BIN)");
    const scratch = hostDir(build);
    const settings = ["retry_interval=20ms", "stuck_threshold=1s", "recovery_interval=300ms"];
    let host = await startHost(build, scratch.dir, settings);
    try {
      const flaky = await startSaga(FLAKY, "10s", host.url);
      assert.equal(flaky.status, "COMPLETED", JSON.stringify(flaky));
      // A saga cut off mid-step by the crash, for recovery to finish.
      const sleepy = await startSaga({ steps: ["test_ok", "test_sleep"], input: { sleep_ms: 3000 } }, "", host.url);
      await until(async () => (await api(`/api/transactions/${sleepy.tx_id}`, { base: host.url })).body?.steps?.[1]?.status === "EXECUTING", "the sleeping step to start");
      const before = (await api(`/api/transactions/${flaky.tx_id}`, { base: host.url })).body;
      assert.deepEqual(summary(before), FLAKY_ATTEMPTS);

      await host.stop("SIGKILL");
      host = await startHost(build, scratch.dir, settings);

      const after = (await api(`/api/transactions/${flaky.tx_id}`, { base: host.url })).body;
      assert.deepEqual(after.attempts, before.attempts, "the same attempts from the next host");
      assert.deepEqual(after.history, before.history);
      let p = await detailWithoutEvents(host.url, flaky.tx_id);
      await checkFlakyPage(p.page, after);
      await shot(p.page, "detail-flaky-after-restart");
      await p.context.close();
      assert.deepEqual(p.errors, []);

      // Recovery takes the cut-off saga over: the lost call, then the one recovery made.
      const done = await until(async () => {
        const v = (await api(`/api/transactions/${sleepy.tx_id}`, { base: host.url })).body;
        return v?.status === "COMPLETED" ? v : null;
      }, "recovery to finish the saga", 60000);
      const recovery = done.history.find((h) => h.kind === "recovery");
      assert.equal(recovery?.actor?.type, "recovery", JSON.stringify(done.history));
      assert.equal(done.retry_count, 0, "a recovery is not a retry");
      p = await detailWithoutEvents(host.url, sleepy.tx_id);
      await p.page.locator(".timeline svg").waitFor();
      assert.deepEqual(await executeOutcomes(p.page), [["completed"], ["failed", "completed"]]);
      assert.equal(await p.page.locator('.timeline-row[data-step="1"] rect.outcome-failed').getAttribute("data-failure-kind"), "lost");
      const line = p.page.locator(".history-line", { hasText: "recovery" }).first();
      assert.equal(await line.locator(".actor").textContent(), `by recovery on ${recovery.actor.host}`);
      assert.equal(await p.page.locator(".history-line.by-operator").count(), 0, "nothing here was done by an operator");
      assert.equal(await p.page.locator(".timeline .history-mark-recovery").count(), done.history.filter((h) => h.actor?.type === "recovery").length);
      assert.equal(await field(p.page, "Retries"), `0 of ${done.max_retries}`);
      await shot(p.page, "detail-recovered");
      await p.context.close();
      assert.deepEqual(p.errors, []);
    } catch (e) {
      t.diagnostic(`own host's log:\n${host.logTail()}`);
      throw e;
    } finally {
      await host.stop();
      scratch.remove();
    }
  });
});
