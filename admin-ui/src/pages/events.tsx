// Live event stream: recent events, then the stream; filter by type and tx id; pause/resume.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Empty, ErrorState, Loading, PageHeader } from "../components/ui";
import { useApi } from "../hooks";
import { formatTime } from "../lib/format";
import { Link } from "../router";
import { subscribe, type StreamState } from "../stream";
import { EVENT_TYPES, type RteEvent } from "../types";

const KEEP = 1000;

function eventTone(type: string): string {
  if (type === "alert.critical" || type === "tx.compensation_failed" || type === "circuit.opened") return "bad";
  if (type.endsWith(".failed") || type === "tx.timeout" || type === "alert.warning" || type === "tx.compensated") return "warn";
  if (type.endsWith(".completed") || type === "circuit.closed") return "ok";
  return "muted";
}

export function Events() {
  const initial = useApi<{ events: RteEvent[] }>("/api/events?limit=200");
  const [events, setEvents] = useState<RteEvent[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState<RteEvent[]>([]);
  const [stream, setStream] = useState<StreamState>("connecting");
  const [type, setType] = useState("");
  const [txId, setTxId] = useState("");
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    if (!initial.data) return;
    const key = (e: RteEvent) => `${e.timestamp}|${e.type}|${e.tx_id ?? ""}|${e.step_name ?? ""}`;
    setEvents((live) => {
      const seen = new Set(live.map(key));
      return [...live, ...initial.data!.events.filter((e) => !seen.has(key(e)))].slice(0, KEEP);
    });
  }, [initial.data]);

  useEffect(
    () =>
      subscribe((e) => {
        if (pausedRef.current) setHeld((h) => [e, ...h].slice(0, KEEP));
        else setEvents((l) => [e, ...l].slice(0, KEEP));
      }, setStream),
    [],
  );

  const resume = () => {
    setEvents((l) => [...held, ...l].slice(0, KEEP));
    setHeld([]);
    setPaused(false);
  };

  const types = useMemo(() => [...new Set([...EVENT_TYPES, ...events.map((e) => e.type)])].sort(), [events]);
  const needle = txId.trim();
  const shown = events.filter((e) => (!type || e.type === type) && (!needle || (e.tx_id ?? "").startsWith(needle)));

  return (
    <>
      <PageHeader title="Events">
        <span class={`live live-${paused ? "paused" : stream}`} role="status">
          {paused ? `Paused${held.length ? ` · ${held.length} new` : ""}` : stream === "live" ? "Live" : stream === "connecting" ? "Connecting…" : "Stream unavailable"}
        </span>
        {paused ? (
          <button type="button" class="btn btn-primary" onClick={resume}>
            Resume
          </button>
        ) : (
          <button type="button" class="btn" onClick={() => setPaused(true)}>
            Pause
          </button>
        )}
        <button type="button" class="btn btn-ghost" onClick={() => setEvents([])} disabled={!events.length}>
          Clear
        </button>
      </PageHeader>
      <div class="filters panel filter-row" role="search">
        <label class="field-inline">
          <span>Type</span>
          <select value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)}>
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
          <input type="search" value={txId} spellcheck={false} placeholder="id or prefix" onInput={(e) => setTxId((e.target as HTMLInputElement).value)} />
        </label>
        <span class="muted">
          {shown.length} of {events.length} shown
        </span>
      </div>
      {initial.error && !events.length ? <ErrorState error={initial.error} what="recent events" onRetry={initial.reload} /> : null}
      {stream === "error" ? (
        <div class="banner banner-warn" role="status">
          The live stream is not available; showing the events fetched when the page opened.
        </div>
      ) : null}
      {!initial.data && !initial.error ? (
        <Loading />
      ) : shown.length === 0 ? (
        <Empty title={events.length ? "No events match these filters" : "No events yet"}>Events appear here as sagas run.</Empty>
      ) : (
        <div class="table-wrap table-scroll">
          <table class="events">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Type</th>
                <th scope="col">Transaction</th>
                <th scope="col">Step</th>
                <th scope="col">Detail</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((e, i) => (
                <tr key={`${e.timestamp}-${e.type}-${i}`}>
                  <td class="nowrap">{formatTime(e.timestamp, true)}</td>
                  <td>
                    <span class={`badge tone-${eventTone(e.type)}`}>{e.type}</span>
                  </td>
                  <td>
                    {e.tx_id ? (
                      <Link class="mono" href={`/transactions/${encodeURIComponent(e.tx_id)}`}>
                        {e.tx_id}
                      </Link>
                    ) : (
                      <span class="muted">—</span>
                    )}
                    {e.tx_type ? <div class="sub">{e.tx_type}</div> : null}
                  </td>
                  <td>{e.step_name ?? <span class="muted">—</span>}</td>
                  <td class="err-cell wide">
                    {e.error ? <span class="err-text">{e.error} </span> : null}
                    {Object.keys(e.data ?? {}).length ? <code class="data">{JSON.stringify(e.data)}</code> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
