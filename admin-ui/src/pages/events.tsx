// The event log: filtered and paged by the host (type, saga, step, time); the first page
// also shows live events that match, with pause/resume.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Breakable, Empty, ErrorState, Loading, PageHeader } from "../components/ui";
import { useApi } from "../hooks";
import { EVENTS_PAGE_SIZE, eventFiltersToQuery, eventKey, eventMatches, NO_EVENT_FILTERS, parseEventFilters, type EventFilters } from "../lib/events";
import { formatDay, formatEventData, formatTime, isoToLocalInput, localInputToIso } from "../lib/format";
import { pageCount } from "../lib/query";
import { Link, navigate } from "../router";
import { subscribe, type StreamState } from "../stream";
import { EVENT_TYPES, type EventPage, type RteEvent } from "../types";

const KEEP = 1000;

/** An event's badge tone: a saga outcome has its status's colour (see lib/status.ts). */
export function eventTone(type: string): string {
  const outcome: Record<string, string> = {
    "tx.completed": "ok",
    "tx.failed": "bad",
    "tx.timeout": "timeout",
    "tx.compensated": "undone",
    "step.compensated": "undone",
    "tx.compensation_failed": "critical",
    "alert.critical": "critical",
    "tx.cancelled": "muted",
    "circuit.opened": "bad",
    "circuit.closed": "ok",
    "alert.warning": "warn",
    "step.failed": "warn",
  };
  if (outcome[type]) return outcome[type];
  if (type.endsWith(".completed")) return "ok";
  return "muted";
}

function go(f: EventFilters) {
  const q = eventFiltersToQuery(f);
  navigate(q ? `/events?${q}` : "/events");
}

export function Events({ search }: { search: string }) {
  const filters = useMemo(() => parseEventFilters(search), [search]);
  const initial = useApi<EventPage>(`/api/events?${eventFiltersToQuery(filters, true)}`, 0, true);
  // Live events are added to the first page only: a later page holds older events.
  const live = filters.page === 1;
  const [events, setEvents] = useState<RteEvent[]>([]);
  const [fresh, setFresh] = useState(0);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState<RteEvent[]>([]);
  const [stream, setStream] = useState<StreamState>("connecting");
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const filtersRef = useRef(filters);
  filtersRef.current = filters;

  useEffect(() => {
    setEvents(initial.data?.events ?? []);
    setFresh(0);
    setHeld([]);
  }, [initial.data]);

  useEffect(
    () =>
      subscribe((e) => {
        const f = filtersRef.current;
        if (f.page !== 1 || !eventMatches(e, f)) return;
        if (pausedRef.current) setHeld((h) => [e, ...h].slice(0, KEEP));
        else {
          setEvents((l) => (l.some((x) => eventKey(x) === eventKey(e)) ? l : [e, ...l].slice(0, KEEP)));
          setFresh((n) => n + 1);
        }
      }, setStream),
    [],
  );

  const resume = () => {
    setEvents((l) => [...held, ...l].slice(0, KEEP));
    setFresh((n) => n + held.length);
    setHeld([]);
    setPaused(false);
  };

  const types = useMemo(() => [...new Set([...EVENT_TYPES, ...events.map((e) => e.type), ...(filters.type ? [filters.type] : [])])].sort(), [events, filters.type]);
  const total = (initial.data?.total ?? 0) + (live ? fresh : 0);
  const pages = pageCount(initial.data?.total ?? 0, EVENTS_PAGE_SIZE);
  const active = eventFiltersToQuery({ ...filters, page: 1 }) !== "";

  return (
    <>
      <PageHeader title="Events">
        {live ? (
          <span class={`live live-${paused ? "paused" : stream}`} role="status">
            {paused ? `Paused${held.length ? ` · ${held.length} new` : ""}` : stream === "live" ? "Live" : stream === "connecting" ? "Connecting…" : "Stream unavailable"}
          </span>
        ) : (
          <span class="live" role="status">
            Older events
          </span>
        )}
        {!live ? null : paused ? (
          <button type="button" class="btn btn-primary" onClick={resume}>
            Resume
          </button>
        ) : (
          <button type="button" class="btn" onClick={() => setPaused(true)}>
            Pause
          </button>
        )}
        <button type="button" class="btn" onClick={initial.reload} disabled={initial.loading}>
          Refresh
        </button>
      </PageHeader>
      <EventFilterBar filters={filters} types={types} active={active} />
      {initial.error ? <ErrorState error={initial.error} what="events" onRetry={initial.reload} /> : null}
      {live && stream === "error" ? (
        <div class="banner banner-warn" role="status">
          The live stream is not available; showing the events fetched when the page opened.
        </div>
      ) : null}
      {!initial.data && !initial.error ? (
        <Loading />
      ) : events.length === 0 ? (
        <Empty title={active || filters.page > 1 ? "No events match these filters" : "No events yet"}>
          {active ? (
            <button type="button" class="btn" onClick={() => go(NO_EVENT_FILTERS)}>
              Clear filters
            </button>
          ) : (
            "Events appear here as sagas run."
          )}
        </Empty>
      ) : (
        <div class="table-wrap table-scroll">
          <table class="events">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Type</th>
                <th scope="col">Transaction and step</th>
                <th scope="col">Detail</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e, i) => (
                <tr key={`${e.timestamp}-${e.type}-${i}`}>
                  <td class="nowrap" title={formatTime(e.timestamp, true)}>
                    {formatTime(e.timestamp, true).slice(11)}
                    <div class="sub">{formatDay(e.timestamp)}</div>
                  </td>
                  <td>
                    <span class={`badge tone-${eventTone(e.type)}`}>{e.type}</span>
                  </td>
                  <td>
                    {e.tx_id ? (
                      <Link class="mono tx-link" href={`/transactions/${encodeURIComponent(e.tx_id)}`}>
                        {e.tx_id}
                      </Link>
                    ) : (
                      <span class="muted">—</span>
                    )}
                    {e.tx_type || e.step_name ? (
                      <div class="sub">
                        {e.tx_type}
                        {e.tx_type && e.step_name ? " · " : ""}
                        {e.step_name ? <strong class="event-step">{e.step_name}</strong> : null}
                      </div>
                    ) : null}
                  </td>
                  <td class="err-cell wide">
                    {e.error ? (
                      <span class="err-text">
                        <Breakable text={e.error} />{" "}
                      </span>
                    ) : null}
                    {Object.keys(e.data ?? {}).length ? (
                      <code class="data">
                        <Breakable text={formatEventData(e.data)} />
                      </code>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {initial.data ? (
        <nav class="pager" aria-label="Pages">
          <span class="muted events-count">
            {total.toLocaleString()} {total === 1 ? "event matches" : "events match"} in the host's log (it keeps the latest {(initial.data.log_size ?? 1000).toLocaleString()})
          </span>
          {pages > 1 ? (
            <div class="pager-pages">
              <button type="button" class="btn btn-small" disabled={filters.page <= 1} onClick={() => go({ ...filters, page: filters.page - 1 })}>
                ‹ Newer
              </button>
              <span class="muted">
                page {filters.page} of {pages}
              </span>
              <button type="button" class="btn btn-small" disabled={filters.page >= pages} onClick={() => go({ ...filters, page: filters.page + 1 })}>
                Older ›
              </button>
            </div>
          ) : null}
        </nav>
      ) : null}
    </>
  );
}

/** Type, saga, step and time filters, applied by the host over its whole event log. */
function EventFilterBar({ filters, types, active }: { filters: EventFilters; types: string[]; active: boolean }) {
  const [tx, setTx] = useState(filters.tx);
  const [step, setStep] = useState(filters.step);
  const [since, setSince] = useState(isoToLocalInput(filters.since));
  const [until, setUntil] = useState(isoToLocalInput(filters.until));
  useEffect(() => {
    setTx(filters.tx);
    setStep(filters.step);
    setSince(isoToLocalInput(filters.since));
    setUntil(isoToLocalInput(filters.until));
  }, [filters.tx, filters.step, filters.since, filters.until]);
  return (
    <form
      class="filters panel filter-row"
      role="search"
      aria-label="Filter events"
      onSubmit={(e) => {
        e.preventDefault();
        go({ ...filters, tx: tx.trim(), step: step.trim(), since: localInputToIso(since), until: localInputToIso(until), page: 1 });
      }}
    >
      <label class="field-inline">
        <span>Type</span>
        <select value={filters.type} onChange={(e) => go({ ...filters, type: (e.target as HTMLSelectElement).value, page: 1 })}>
          <option value="">All types</option>
          {types.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </label>
      <label class="field-inline grow">
        <span>Transaction id</span>
        <input type="search" value={tx} spellcheck={false} placeholder="id or part of it" onInput={(e) => setTx((e.target as HTMLInputElement).value)} />
      </label>
      <label class="field-inline">
        <span>Step</span>
        <input type="search" value={step} spellcheck={false} placeholder="step name" onInput={(e) => setStep((e.target as HTMLInputElement).value)} />
      </label>
      <label class="field-inline">
        <span>From</span>
        <input type="datetime-local" value={since} onInput={(e) => setSince((e.target as HTMLInputElement).value)} />
      </label>
      <label class="field-inline">
        <span>to</span>
        <input type="datetime-local" value={until} onInput={(e) => setUntil((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit" class="btn btn-primary">
        Apply
      </button>
      {active ? (
        <button type="button" class="btn btn-ghost" onClick={() => go(NO_EVENT_FILTERS)}>
          Clear
        </button>
      ) : null}
    </form>
  );
}
