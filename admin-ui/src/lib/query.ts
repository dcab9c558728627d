// Transaction-list filters ↔ query strings. The page URL and the API call use the same
// parameter names, so a copied link reproduces the same list.

export interface TxFilters {
  status: string[];
  tx_type: string;
  /** RFC 3339 or "". */
  from: string;
  /** RFC 3339 or "". */
  to: string;
  /** Part of a saga id, anywhere in it. */
  q: string;
  /** Input conditions, all of which must hold: [top-level key, value] (`input.key=value` in URLs). */
  input: [string, string][];
  page: number;
  page_size: number;
}

export const PAGE_SIZES = [20, 50, 100];
export const DEFAULT_FILTERS: TxFilters = {
  status: [],
  tx_type: "",
  from: "",
  to: "",
  q: "",
  input: [],
  page: 1,
  page_size: 20,
};

/** Query parameters that search the saga's input start with this: `input.account_id=ACC-1007`. */
const INPUT_PARAM = "input.";

function positiveInt(v: string | null, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = v == null ? NaN : Number.parseInt(v, 10);
  return Number.isFinite(n) && n >= 1 ? Math.min(n, max) : fallback;
}

/** Read filters from a query string ("?status=FAILED&page=2" or URLSearchParams). */
export function parseFilters(search: string | URLSearchParams): TxFilters {
  const p = typeof search === "string" ? new URLSearchParams(search) : search;
  const status = [...new Set(p.getAll("status").flatMap((s) => s.split(",")).map((s) => s.trim().toUpperCase()).filter(Boolean))];
  return {
    status,
    tx_type: p.get("tx_type")?.trim() ?? "",
    from: p.get("from")?.trim() ?? "",
    to: p.get("to")?.trim() ?? "",
    q: p.get("q")?.trim() ?? "",
    input: [...p.entries()].filter(([k]) => k.startsWith(INPUT_PARAM) && k.length > INPUT_PARAM.length).map(([k, v]) => [k.slice(INPUT_PARAM.length), v]),
    page: positiveInt(p.get("page"), 1),
    page_size: positiveInt(p.get("page_size"), DEFAULT_FILTERS.page_size, 500),
  };
}

/**
 * Filters → query string without the leading "?". Defaults are left out, so the plain list
 * is "/transactions"; `forApi` always includes page and page_size.
 */
export function filtersToQuery(f: TxFilters, forApi = false): string {
  const p = new URLSearchParams();
  for (const s of f.status) p.append("status", s);
  if (f.tx_type) p.set("tx_type", f.tx_type);
  if (f.from) p.set("from", f.from);
  if (f.to) p.set("to", f.to);
  if (f.q) p.set("q", f.q);
  for (const [k, v] of f.input) p.append(INPUT_PARAM + k, v);
  if (forApi || f.page !== 1) p.set("page", String(f.page));
  if (forApi || f.page_size !== DEFAULT_FILTERS.page_size) p.set("page_size", String(f.page_size));
  return p.toString();
}

/** The filter of a bulk action (`POST /api/transactions/bulk`): the list's, without its page. */
export function bulkFilter(f: TxFilters): Record<string, unknown> {
  const out: Record<string, unknown> = { status: f.status };
  if (f.tx_type) out.tx_type = f.tx_type;
  if (f.from) out.from = f.from;
  if (f.to) out.to = f.to;
  if (f.q) out.q = f.q;
  if (f.input.length) out.input = Object.fromEntries(f.input);
  return out;
}

/** A change of any filter but the page goes back to page 1. */
export function withFilter(f: TxFilters, change: Partial<TxFilters>): TxFilters {
  const next = { ...f, ...change };
  if (!("page" in change)) next.page = 1;
  return next;
}

export function toggleStatus(f: TxFilters, status: string): TxFilters {
  const has = f.status.includes(status);
  return withFilter(f, { status: has ? f.status.filter((s) => s !== status) : [...f.status, status] });
}

export function pageCount(total: number, pageSize: number): number {
  return Math.max(1, Math.ceil(total / Math.max(1, pageSize)));
}

/**
 * Page numbers to show around `page`: first, last, and `radius` either side, with "…" for gaps.
 * pageWindow(6, 20) → [1, "…", 4, 5, 6, 7, 8, "…", 20].
 */
export function pageWindow(page: number, pages: number, radius = 2): (number | "…")[] {
  const out: (number | "…")[] = [];
  let last = 0;
  for (let n = 1; n <= pages; n++) {
    if (n === 1 || n === pages || Math.abs(n - page) <= radius) {
      if (last && n - last > 1) out.push(n - last === 2 ? last + 1 : "…");
      out.push(n);
      last = n;
    }
  }
  return out;
}

/** "21–40 of 134" for page 2 of 20. */
export function rangeLabel(page: number, pageSize: number, total: number): string {
  if (total === 0) return "0 of 0";
  const first = (page - 1) * pageSize + 1;
  const last = Math.min(total, page * pageSize);
  return first > total ? `— of ${total}` : `${first}–${last} of ${total}`;
}

/** What the list's search box holds: an id part, input conditions, or why it cannot be read. */
export type Search = { q: string; input: [string, string][] } | { error: string };

/**
 * Read the search box: words separated by spaces; `key=value` searches the input's top-level
 * key, any other word is part of a saga id. Double quotes keep spaces in a word
 * (`name="Ada L"`), and a backslash takes the next character as it is (`\"`).
 * parseSearch('account_id=ACC-1007 01a2') → { q: "01a2", input: [["account_id", "ACC-1007"]] }.
 */
export function parseSearch(text: string): Search {
  const words: { text: string; eq: number }[] = [];
  let word = "";
  let eq = -1; // where the first unquoted, unescaped "=" of the word is
  let quoted = false;
  let started = false;
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === "\\" && i + 1 < chars.length) {
      word += chars[++i];
      started = true;
    } else if (c === '"') {
      quoted = !quoted;
      started = true;
    } else if (!quoted && /\s/.test(c)) {
      if (started) words.push({ text: word, eq });
      word = "";
      eq = -1;
      started = false;
    } else {
      if (c === "=" && !quoted && eq === -1) eq = word.length;
      word += c;
      started = true;
    }
  }
  if (quoted) return { error: "A quote is not closed." };
  if (started) words.push({ text: word, eq });
  const input: [string, string][] = [];
  const ids: string[] = [];
  for (const w of words) {
    if (w.eq === -1) ids.push(w.text);
    else if (w.eq === 0) return { error: `"${w.text}": name the input key before "=", as in account_id=ACC-1007.` };
    else {
      const key = w.text.slice(0, w.eq);
      if (input.some(([k]) => k === key)) return { error: `"${key}" is given twice: a saga's input holds one value per key.` };
      input.push([key, w.text.slice(w.eq + 1)]);
    }
  }
  if (ids.length > 1) return { error: `Search one id part at a time (${ids.map((i) => `"${i}"`).join(", ")}); input conditions are key=value.` };
  return { q: ids[0] ?? "", input };
}

/** The search box's text for these filters (what parseSearch reads back). */
export function searchText(f: Pick<TxFilters, "q" | "input">): string {
  // A key's "=" is escaped too: the first bare "=" ends the key.
  const word = (s: string, isKey: boolean) => {
    const escaped = s.replace(isKey ? /["\\=]/g : /["\\]/g, (c) => `\\${c}`);
    return s === "" || /\s/.test(s) ? `"${escaped}"` : escaped;
  };
  return [...f.input.map(([k, v]) => `${word(k, true)}=${word(v, false)}`), ...(f.q ? [word(f.q, false)] : [])].join(" ");
}
