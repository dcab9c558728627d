import { describe, expect, it } from "vitest";
import { bulkFilter, DEFAULT_FILTERS, filtersToQuery, pageCount, pageWindow, parseFilters, parseSearch, rangeLabel, searchText, toggleStatus, withFilter, type TxFilters } from "./query";

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
      input: [
        ["account_id", "ACC-1007"],
        ["note", "a&b=c"],
      ],
      page: 3,
      page_size: 50,
    });
    expect(q).toBe(
      "status=FAILED&status=COMPENSATED&tx_type=fund_transfer&from=2024-01-01T00%3A00%3A00.000Z&to=2024-01-02T00%3A00%3A00.000Z&q=01a2&input.account_id=ACC-1007&input.note=a%26b%3Dc&page=3&page_size=50",
    );
    expect(parseFilters(`?${q}`)).toEqual({
      status: ["FAILED", "COMPENSATED"],
      tx_type: "fund_transfer",
      from: "2024-01-01T00:00:00.000Z",
      to: "2024-01-02T00:00:00.000Z",
      q: "01a2",
      input: [
        ["account_id", "ACC-1007"],
        ["note", "a&b=c"],
      ],
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

describe("the search box", () => {
  it("reads key=value as an input condition and any other word as part of an id", () => {
    expect(parseSearch("account_id=ACC-1007")).toEqual({ q: "", input: [["account_id", "ACC-1007"]] });
    expect(parseSearch("  0192f3a1  ")).toEqual({ q: "0192f3a1", input: [] });
    expect(parseSearch("amount=100 urgent=true 7d5e")).toEqual({
      q: "7d5e",
      input: [
        ["amount", "100"],
        ["urgent", "true"],
      ],
    });
    expect(parseSearch("")).toEqual({ q: "", input: [] });
  });

  it("keeps spaces inside quotes, takes escaped characters as they are, and splits at the first =", () => {
    expect(parseSearch('name="Ada  L" memo=a=b')).toEqual({
      q: "",
      input: [
        ["name", "Ada  L"],
        ["memo", "a=b"],
      ],
    });
    expect(parseSearch('quote=say\\"hi\\" empty=""')).toEqual({
      q: "",
      input: [
        ["quote", 'say"hi"'],
        ["empty", ""],
      ],
    });
    expect(parseSearch('"my key"=x')).toEqual({ q: "", input: [["my key", "x"]] });
  });

  it("says what it cannot read", () => {
    expect(parseSearch("=ACC-1007")).toHaveProperty("error", expect.stringContaining("name the input key"));
    expect(parseSearch('name="Ada')).toHaveProperty("error", "A quote is not closed.");
    expect(parseSearch("0192 7d5e")).toHaveProperty("error", expect.stringContaining("one id part at a time"));
    expect(parseSearch("a=1 a=2")).toHaveProperty("error", expect.stringContaining('"a" is given twice'));
  });

  it("shows the filters' search as text that reads back the same", () => {
    const cases: Pick<TxFilters, "q" | "input">[] = [
      { q: "", input: [] },
      { q: "01a2", input: [["account_id", "ACC-1007"]] },
      {
        q: "",
        input: [
          ["name", "Ada L"],
          ["quote", 'say "hi" \\o/'],
          ["k=1", "v"],
          ["empty", ""],
        ],
      },
    ];
    for (const c of cases) expect(parseSearch(searchText(c))).toEqual(c);
    expect(searchText({ q: "01a2", input: [["account_id", "ACC-1007"]] })).toBe("account_id=ACC-1007 01a2");
  });

  it("round-trips through the page URL", () => {
    const parsed = parseSearch("account_id=ACC-1007 amount=100");
    if ("error" in parsed) throw new Error(parsed.error);
    const f = withFilter({ ...DEFAULT_FILTERS, page: 3 }, parsed);
    expect(f.page).toBe(1);
    expect(filtersToQuery(f)).toBe("input.account_id=ACC-1007&input.amount=100");
    expect(parseFilters(filtersToQuery(f)).input).toEqual(f.input);
    // "input." alone names no key and is ignored, as are other parameters.
    expect(parseFilters("input.=x&inputs=y").input).toEqual([]);
  });
});

describe("bulkFilter", () => {
  it("sends the list's filters, its search included, without the page", () => {
    const input: [string, string][] = [
      ["account_id", "ACC-1007"],
      ["amount", "100"],
    ];
    const f = { ...DEFAULT_FILTERS, status: ["FAILED"], q: "7d5e", input, page: 4 };
    expect(bulkFilter(f)).toEqual({ status: ["FAILED"], q: "7d5e", input: { account_id: "ACC-1007", amount: "100" } });
    expect(bulkFilter({ ...DEFAULT_FILTERS, status: ["TIMEOUT"] })).toEqual({ status: ["TIMEOUT"] });
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
