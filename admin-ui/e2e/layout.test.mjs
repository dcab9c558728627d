// Layout: every page at 1440, 1024 and 768 px keeps each control on screen, scrolls no table
// sideways and breaks no word in a table cell. A screenshot of each page at each width is
// written to e2e/screenshots/layout/.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BASE, launch, missingEndpoints, openPage, SHOTS, startSaga } from "./helpers.mjs";

const WIDTHS = [1440, 1024, 768];
const DIR = join(SHOTS, "layout");
mkdirSync(DIR, { recursive: true });

let browser;
let missing = [];
const data = {};

before(async () => {
  missing = await missingEndpoints();
  // A failure with a long message, compensated steps, and a run of steps with long names.
  data.compensated = await startSaga({ steps: ["test_ok", "test_bad_compensation", "test_kv_counter", "test_fail"], input: { key: "layout" } });
  data.failed = await startSaga({ steps: ["test_fail"], input: { reason: "a rather long explanation of why this step gave up on its work" } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/**
 * What is wrong with the page's layout, as text: controls past the window's left or right
 * edge, a page or table wider than its box, table cells whose text is clipped or has a word
 * broken across lines.
 */
function layoutProblems() {
  const problems = [];
  const vw = document.documentElement.clientWidth;
  const name = (el) => `${el.tagName.toLowerCase()}${el.className && typeof el.className === "string" ? `.${el.className.trim().split(/\s+/).join(".")}` : ""} "${(el.getAttribute("aria-label") ?? el.textContent ?? "").trim().slice(0, 40)}"`;
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.height > 1 && getComputedStyle(el).visibility !== "hidden";
  };
  if (document.documentElement.scrollWidth > vw + 1) problems.push(`page is ${document.documentElement.scrollWidth - vw}px wider than the window`);
  for (const el of document.querySelectorAll("button, a[href], input, select, textarea, summary")) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.right > vw + 1) problems.push(`control off screen (${Math.round(r.left)}..${Math.round(r.right)} of ${vw}): ${name(el)}`);
  }
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    if (shown(wrap) && wrap.scrollWidth > wrap.clientWidth + 1) problems.push(`table scrolls sideways by ${wrap.scrollWidth - wrap.clientWidth}px: ${name(wrap.querySelector("table") ?? wrap)}`);
  }
  for (const cell of document.querySelectorAll("td, th")) {
    if (!shown(cell)) continue;
    for (const el of [cell, ...cell.querySelectorAll("*")]) {
      if (el.closest("pre") || !shown(el)) continue;
      const ox = getComputedStyle(el).overflowX;
      if ((ox === "hidden" || ox === "clip") && el.scrollWidth > el.clientWidth + 1) problems.push(`text clipped in a cell: ${name(el)}`);
    }
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("pre") || !shown(node.parentElement)) continue;
      for (const m of node.textContent.matchAll(/\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (tops.size > 1) problems.push(`word broken across lines: "${m[0].slice(0, 50)}" in ${name(cell)}`);
      }
    }
  }
  return problems;
}

async function settle(page) {
  await page.waitForLoadState("networkidle").catch(() => {});
  await page.waitForFunction(() => !document.querySelector(".spinner"), null, { timeout: 10000 }).catch(() => {});
}

describe("layout", { timeout: 240000 }, () => {
  const pages = () => [
    ["/", "dashboard"],
    ["/transactions", "transactions"],
    ["/transactions?status=FAILED&status=COMPENSATION_FAILED", "transactions-failed"],
    [`/transactions/${data.compensated.tx_id}`, "detail"],
    ["/start", "start"],
    ["/events", "events"],
    ["/recovery", "recovery"],
    ["/circuit-breakers", "circuit-breakers"],
    ["/plugins", "plugins"],
  ];
  for (const width of WIDTHS) {
    it(`every page fits at ${width} px`, async () => {
      const found = [];
      for (const [path, name] of pages()) {
        const { context, page, errors } = await openPage(browser, { allowed: missing, width, height: 900 });
        await page.goto(BASE + path);
        await page.locator("h1").first().waitFor();
        await settle(page);
        if (name === "detail") {
          // The first step's details open, as an operator reading them would.
          await page.locator(".steps .step-toggle").first().click();
        }
        found.push(...(await page.evaluate(layoutProblems)).map((p) => `${path}: ${p}`));
        await page.screenshot({ path: join(DIR, `${name}-${width}.png`), fullPage: true });
        await context.close();
        assert.deepEqual(errors, [], `${path} at ${width} px`);
      }
      assert.deepEqual(found, [], `layout problems at ${width} px`);
    });
  }
});
