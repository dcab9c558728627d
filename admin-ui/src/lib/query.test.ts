import { describe, expect, it } from "vitest";
import { DEFAULT_FILTERS, filtersToQuery, pageCount, pageWindow, parseFilters, rangeLabel, toggleStatus, withFilter } from "./query";

describe("filters ↔ query string", () => {
  it("leaves defaults out of page URLs", () => {
    expect(filtersToQuery(DEFAULT_FILTERS)).toBe("");
  });

  it("always sends page and page_size to the API", () => {
    expect(filtersToQuery(DEFAULT_FILTERS, true)).toBe("page=1&page_size=20");
  });

  it("repeats status and keeps every filter", () => {
    const q = filtersToQuery({
      status: ["FAILED", "COMPENSATED"],
      tx_type: "fund_transfer",
      from: "2024-01-01T00:00:00.000Z",
      to: "2024-01-02T00:00:00.000Z",
      q: "01a2",
      page: 3,
      page_size: 50,
    });
    expect(q).toBe(
      "status=FAILED&status=COMPENSATED&tx_type=fund_transfer&from=2024-01-01T00%3A00%3A00.000Z&to=2024-01-02T00%3A00%3A00.000Z&q=01a2&page=3&page_size=50",
    );
    expect(parseFilters(`?${q}`)).toEqual({
      status: ["FAILED", "COMPENSATED"],
      tx_type: "fund_transfer",
      from: "2024-01-01T00:00:00.000Z",
      to: "2024-01-02T00:00:00.000Z",
      q: "01a2",
      page: 3,
      page_size: 50,
    });
  });

  it("tolerates hand-written links", () => {
    const f = parseFilters("status=failed,timeout&status=FAILED&page=0&page_size=abc&q=%20x%20");
    expect(f.status).toEqual(["FAILED", "TIMEOUT"]);
    expect(f.page).toBe(1);
    expect(f.page_size).toBe(20);
    expect(f.q).toBe("x");
    expect(parseFilters("page_size=100000").page_size).toBe(500);
  });

  it("goes back to page 1 when a filter changes", () => {
    const f = { ...DEFAULT_FILTERS, page: 4 };
    expect(withFilter(f, { tx_type: "x" }).page).toBe(1);
    expect(withFilter(f, { page: 5 }).page).toBe(5);
    const t = toggleStatus(toggleStatus(f, "FAILED"), "TIMEOUT");
    expect(t.status).toEqual(["FAILED", "TIMEOUT"]);
    expect(toggleStatus(t, "FAILED").status).toEqual(["TIMEOUT"]);
    expect(t.page).toBe(1);
  });
});

describe("pagination", () => {
  it("counts pages", () => {
    expect(pageCount(0, 20)).toBe(1);
    expect(pageCount(20, 20)).toBe(1);
    expect(pageCount(21, 20)).toBe(2);
  });

  it("windows page numbers with gaps", () => {
    expect(pageWindow(1, 1)).toEqual([1]);
    expect(pageWindow(1, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(pageWindow(6, 20)).toEqual([1, "…", 4, 5, 6, 7, 8, "…", 20]);
    expect(pageWindow(1, 20)).toEqual([1, 2, 3, "…", 20]);
    // a gap of exactly one page shows the page, not an ellipsis
    expect(pageWindow(5, 20)).toEqual([1, 2, 3, 4, 5, 6, 7, "…", 20]);
  });

  it("labels the range shown", () => {
    expect(rangeLabel(1, 20, 0)).toBe("0 of 0");
    expect(rangeLabel(2, 20, 134)).toBe("21–40 of 134");
    expect(rangeLabel(7, 20, 134)).toBe("121–134 of 134");
  });
});
