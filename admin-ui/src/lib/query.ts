// Transaction-list filters ↔ query strings. The page URL and the API call use the same
// parameter names, so a copied link reproduces the same list.

export interface TxFilters {
  status: string[];
  tx_type: string;
  /** RFC 3339 or "". */
  from: string;
  /** RFC 3339 or "". */
  to: string;
  /** Id prefix. */
  q: string;
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
  page: 1,
  page_size: 20,
};

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
  if (forApi || f.page !== 1) p.set("page", String(f.page));
  if (forApi || f.page_size !== DEFAULT_FILTERS.page_size) p.set("page_size", String(f.page_size));
  return p.toString();
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
