// Transaction list: status/type/time filters and a search (id part, input key=value)
// reflected in the URL, server-side pages.

import { useEffect, useMemo, useState } from "preact/hooks";
import { BulkDialog } from "../components/bulk";
import { Breakable, Empty, ErrorState, Loading, PageHeader, StatusBadge } from "../components/ui";
import { useApi, useDebounced, useNow } from "../hooks";
import { between, formatAgo, formatDuration, formatShortTime, formatTime, isoToLocalInput, localInputToIso } from "../lib/format";
import {
  DEFAULT_FILTERS,
  filtersToQuery,
  PAGE_SIZES,
  pageCount,
  pageWindow,
  parseFilters,
  parseSearch,
  rangeLabel,
  searchText,
  toggleStatus,
  withFilter,
  type TxFilters,
} from "../lib/query";
import { isTerminal, statusColour, statusLabel } from "../lib/status";
import { Link, navigate } from "../router";
import { subscribe } from "../stream";
import { TX_STATUSES, type SagaDef, type Stats, type TxPage, type TxView } from "../types";

function go(f: TxFilters, replace = false) {
  const q = filtersToQuery(f);
  navigate(q ? `/transactions?${q}` : "/transactions", replace);
}

export function Transactions({ search }: { search: string }) {
  const filters = useMemo(() => parseFilters(search), [search]);
  const list = useApi<TxPage>(`/api/transactions?${filtersToQuery(filters, true)}`, 0, true);
  const refresh = useDebounced(list.reload, 2000);
  useEffect(() => subscribe((e) => (e.type.startsWith("tx.") || e.type === "lagged") && refresh()), [refresh]);
  const now = useNow(5000);
  const active = filtersToQuery({ ...filters, page: 1, page_size: DEFAULT_FILTERS.page_size }) !== "";
  const [bulk, setBulk] = useState(false);

  return (
    <>
      <PageHeader title="Transactions">
        <button
          type="button"
          class="btn"
          onClick={() => setBulk(true)}
          disabled={!filters.status.length || !list.data?.total}
          title={filters.status.length ? "Retry or force-cancel every saga this filter selects" : "Choose one or more statuses first"}
        >
          Bulk actions…
        </button>
        <button type="button" class="btn" onClick={list.reload} disabled={list.loading}>
          Refresh
        </button>
        <Link class="btn btn-primary" href="/start">
          Start saga
        </Link>
      </PageHeader>
      <FilterBar filters={filters} active={active} />
      {bulk ? <BulkDialog filters={filters} onClose={() => setBulk(false)} onDone={list.reload} /> : null}
      {list.error ? (
        <ErrorState error={list.error} what="transactions" onRetry={list.reload} />
      ) : !list.data ? (
        <Loading />
      ) : list.data.transactions.length === 0 && list.data.total > 0 ? (
        <Empty title={`Page ${filters.page} is past the end`}>
          {list.data.total === 1 ? "1 transaction matches" : `${list.data.total} transactions match`}, on {pageCount(list.data.total, filters.page_size)} page(s).{" "}
          <button type="button" class="btn" onClick={() => go({ ...filters, page: pageCount(list.data!.total, filters.page_size) })}>
            Go to the last page
          </button>
        </Empty>
      ) : list.data.transactions.length === 0 ? (
        <Empty title={active ? "No transactions match these filters" : "No transactions yet"}>
          {active ? (
            <button type="button" class="btn" onClick={() => go(DEFAULT_FILTERS)}>
              Clear filters
            </button>
          ) : (
            <>
              Start one from the <Link href="/start">Start saga</Link> page or with <code>POST /api/transactions</code>.
            </>
          )}
        </Empty>
      ) : (
        <>
          <div class="table-wrap">
            <table class="tx-table" aria-busy={list.loading}>
              <thead>
                <tr>
                  <th scope="col">Transaction</th>
                  <th scope="col">Status and steps</th>
                  <th scope="col">Created</th>
                  <th scope="col" class="num">
                    Duration
                  </th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {list.data.transactions.map((tx) => (
                  <tr key={tx.tx_id}>
                    <td>
                      <Link class="mono tx-link" href={`/transactions/${encodeURIComponent(tx.tx_id)}`}>
                        {tx.tx_id}
                      </Link>
                      <div class="sub">{tx.tx_type}</div>
                    </td>
                    <td class="nowrap status-cell">
                      <StatusBadge status={tx.status} />
                      <Progress tx={tx} />
                      {tx.retry_count ? (
                        <div class="sub">
                          retried {tx.retry_count} of {tx.max_retries}
                        </div>
                      ) : null}
                    </td>
                    <td class="nowrap" title={formatTime(tx.created_at, true)}>
                      {formatShortTime(tx.created_at, now)}
                      <div class="sub">{formatAgo(tx.created_at, now)}</div>
                    </td>
                    <td class="num">{formatDuration(between(tx.created_at, tx.completed_at, now))}</td>
                    <td class="err-cell" title={tx.error ?? undefined}>
                      {tx.error ? (
                        <div class="clamp">
                          <Breakable text={tx.error} />
                        </div>
                      ) : (
                        <span class="muted">—</span>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager filters={filters} total={list.data.total} />
        </>
      )}
    </>
  );
}

/** Running sagas show how far they got; finished ones how many steps they had. */
function Progress({ tx }: { tx: TxView }) {
  const running = !isTerminal(tx.status);
  if (!running && tx.status !== "COMPLETED") return <div class="sub">{tx.total_steps === 1 ? "1 step" : `${tx.total_steps} steps`}</div>;
  const done = running ? tx.current_step : tx.total_steps;
  const pct = tx.total_steps ? Math.min(100, (done / tx.total_steps) * 100) : 0;
  return (
    <div class="progress" title={running ? `${tx.status === "COMPENSATING" ? "undoing" : "at"} step ${tx.current_step + 1} of ${tx.total_steps}` : "all steps completed"}>
      <div class="progress-track">
        <div class="progress-fill" style={{ width: `${pct}%`, background: statusColour(tx.status) }} />
      </div>
      <span class="sub">
        {done}/{tx.total_steps}
      </span>
    </div>
  );
}

function FilterBar({ filters, active }: { filters: TxFilters; active: boolean }) {
  const stats = useApi<Stats>("/api/stats");
  const sagas = useApi<{ sagas: Record<string, SagaDef> }>("/api/sagas");
  const types = useMemo(() => {
    const set = new Set([...Object.keys(stats.data?.by_type ?? {}), ...Object.keys(sagas.data?.sagas ?? {})]);
    if (filters.tx_type) set.add(filters.tx_type);
    return [...set].sort();
  }, [stats.data, sagas.data, filters.tx_type]);

  const shownSearch = searchText(filters);
  const [search, setSearch] = useState(shownSearch);
  const [searchError, setSearchError] = useState("");
  const [from, setFrom] = useState(isoToLocalInput(filters.from));
  const [to, setTo] = useState(isoToLocalInput(filters.to));
  useEffect(() => {
    setSearch(shownSearch);
    setSearchError("");
    setFrom(isoToLocalInput(filters.from));
    setTo(isoToLocalInput(filters.to));
  }, [shownSearch, filters.from, filters.to]);

  return (
    <form
      class="filters panel"
      role="search"
      aria-label="Filter transactions"
      onSubmit={(e) => {
        e.preventDefault();
        const parsed = parseSearch(search);
        if ("error" in parsed) {
          setSearchError(parsed.error);
          return;
        }
        go(withFilter(filters, { ...parsed, from: localInputToIso(from), to: localInputToIso(to) }));
      }}
    >
      <fieldset class="chips">
        <legend>Status</legend>
        {TX_STATUSES.map((s) => {
          const on = filters.status.includes(s);
          return (
            <button
              type="button"
              key={s}
              class={`chip ${on ? "chip-on" : ""}`}
              aria-pressed={on}
              style={on ? { borderColor: statusColour(s), color: statusColour(s) } : undefined}
              onClick={() => go(toggleStatus(filters, s))}
            >
              <span class="dot" style={{ background: statusColour(s) }} aria-hidden="true" />
              {statusLabel(s)}
            </button>
          );
        })}
      </fieldset>
      <div class="filter-row">
        <label class="field-inline">
          <span>Type</span>
          <select value={filters.tx_type} onChange={(e) => go(withFilter(filters, { tx_type: (e.target as HTMLSelectElement).value }))}>
            <option value="">All types</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label class="field-inline">
          <span>Created from</span>
          <input type="datetime-local" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field-inline">
          <span>to</span>
          <input type="datetime-local" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field-inline grow">
          <span>Search</span>
          <input
            type="search"
            value={search}
            placeholder="part of an id, or input key=value"
            title="Part of a saga id, and/or conditions on the input's top-level keys: account_id=ACC-1007 amount=100 (quote values with spaces)"
            spellcheck={false}
            aria-invalid={searchError ? true : undefined}
            aria-describedby={searchError ? "search-error" : undefined}
            onInput={(e) => {
              setSearch((e.target as HTMLInputElement).value);
              setSearchError("");
            }}
          />
        </label>
        <button type="submit" class="btn btn-primary">
          Apply
        </button>
        {active ? (
          <button type="button" class="btn btn-ghost" onClick={() => go({ ...DEFAULT_FILTERS, page_size: filters.page_size })}>
            Clear
          </button>
        ) : null}
      </div>
      {searchError ? (
        <p id="search-error" class="form-error" role="alert">
          {searchError}
        </p>
      ) : null}
    </form>
  );
}

function Pager({ filters, total }: { filters: TxFilters; total: number }) {
  const pages = pageCount(total, filters.page_size);
  const page = Math.min(filters.page, pages);
  return (
    <nav class="pager" aria-label="Pages">
      <span class="muted">{rangeLabel(filters.page, filters.page_size, total)}</span>
      <div class="pager-pages">
        <button type="button" class="btn btn-small" disabled={page <= 1} onClick={() => go({ ...filters, page: page - 1 })}>
          ‹ Previous
        </button>
        {pageWindow(page, pages).map((n, i) =>
          n === "…" ? (
            <span key={`gap${i}`} class="muted gap">
              …
            </span>
          ) : (
            <button
              type="button"
              key={n}
              class={`btn btn-small ${n === page ? "btn-current" : ""}`}
              aria-current={n === page ? "page" : undefined}
              aria-label={`Page ${n}`}
              onClick={() => go({ ...filters, page: n })}
            >
              {n}
            </button>
          ),
        )}
        <button type="button" class="btn btn-small" disabled={page >= pages} onClick={() => go({ ...filters, page: page + 1 })}>
          Next ›
        </button>
      </div>
      <label class="field-inline">
        <span>Per page</span>
        <select value={filters.page_size} onChange={(e) => go(withFilter(filters, { page_size: Number((e.target as HTMLSelectElement).value) }))}>
          {[...new Set([...PAGE_SIZES, filters.page_size])].sort((a, b) => a - b).map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
    </nav>
  );
}
