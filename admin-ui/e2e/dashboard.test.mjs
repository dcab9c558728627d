// The dashboard's "needs attention" panel against a host of the test's own, brought into
// the states an operator must see first: an open circuit breaker and a saga whose
// compensation failed (with its critical alert).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { api, hostBuild, hostDir, launch, openPage, shot, startHost, startSaga, until } from "./helpers.mjs";

const build = hostBuild();
let browser;
let dir;
let host;
let stuck;

before(async () => {
  if (!build) return;
  dir = hostDir(build);
  // One failure opens a breaker; retries come quickly so the sagas end within the test.
  host = await startHost(build, dir.dir, ["circuit_threshold=1", "circuit_timeout=10m", "retry_interval=50ms"]);
  stuck = await startSaga({ steps: ["test_bad_compensation", "test_fail"], input: {} }, "20s", host.url);
  // A trap counts against the breaker (a permanent failure does not): it opens.
  await startSaga({ steps: ["test_trap"], input: {} }, "20s", host.url);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await host?.stop();
  dir?.remove();
});

describe("dashboard", { timeout: 120000 }, () => {
  it("puts an open breaker, a failed compensation and its alert first", async (t) => {
    if (!build) return t.skip("the rte binary or the example plugins are not built");
    assert.equal(stuck.status, "COMPENSATION_FAILED");
    await until(async () => (await api("/api/circuit-breakers", { base: host.url })).body.circuit_breakers.some((b) => b.state === "open"), "an open breaker");

    const { context, page, errors } = await openPage(browser, { width: 1280 });
    await page.goto(`${host.url}/`);
    const panel = page.locator("section.attention");
    await panel.locator('[data-key="compensation-failed"]').waitFor();
    // It comes before the totals.
    assert.equal(await page.locator("main section").first().getAttribute("class"), "panel attention attention-problems");

    const breakers = panel.locator('[data-key="breakers"]');
    await breakers.waitFor();
    assert.match(await breakers.locator(".attention-title").textContent(), /^1 circuit breaker open$/);
    assert.match(await breakers.locator(".attention-links a").first().textContent(), /^testkit(:testkit)? \(open\)$/);
    assert.match(await breakers.textContent(), /Critical:/, "the level is written, not only coloured");

    const failed = panel.locator('[data-key="compensation-failed"]');
    assert.equal(await failed.locator(".attention-title").textContent(), "1 saga with failed compensation");
    assert.equal(await failed.locator(".attention-links a").first().textContent(), stuck.tx_id);

    const alerts = panel.locator('[data-key="alerts"]');
    await alerts.waitFor();
    assert.match(await alerts.locator(".attention-title").textContent(), /^\d+ critical alerts? in the last 24 h$/);
    assert.match(await panel.locator('[data-key="recovery"] .attention-title').textContent(), /^Recovery (healthy|needs a look)$/);

    // Cards: compensated and cancelled sagas are not counted as failed.
    const card = async (label) => (await page.locator(".card", { has: page.locator(".card-label", { hasText: new RegExp(`^${label}$`) }) }).locator(".card-value").textContent()).trim();
    assert.equal(await card("Compensation failed"), "1");
    assert.equal(await card("Failed"), "1", "the trapped saga");
    assert.equal(await card("Compensated"), "0");

    // The shortest range: per-minute buckets labelled with minutes, every label inside the chart.
    await page.getByLabel("Time range").selectOption("15m");
    await page.waitForResponse((r) => r.url().includes("/api/stats/timeline?minutes=15"));
    await page.waitForFunction(() => document.querySelectorAll("svg.bars .bar-completed").length >= 15);
    const labels = await page.locator("svg.bars").evaluate((svg) => {
      const box = svg.getBoundingClientRect();
      return [...svg.querySelectorAll(".axis-label")].map((t) => {
        const r = t.getBoundingClientRect();
        return { text: t.textContent, inside: r.left >= box.left - 0.5 && r.right <= box.right + 0.5 && r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5 };
      });
    });
    assert.ok(labels.length > 3, JSON.stringify(labels));
    assert.deepEqual(labels.filter((l) => !l.inside), [], "axis labels inside the chart");
    const times = labels.map((l) => l.text).filter((x) => /^\d\d:\d\d$/.test(x));
    assert.ok(times.length >= 3 && times.filter((x) => !x.endsWith(":00")).length >= 2, `minute labels: ${times.join(" ")}`);

    await shot(page, "dashboard-attention");
    await context.close();
    assert.deepEqual(errors, []);
  });
});
