// One shared EventSource for every page that listens; it closes when the last listener leaves
// and reconnects (with the current token) when the token changes.

import { auth, streamUrl } from "./api";
import { EVENT_TYPES, type RteEvent } from "./types";

export type StreamState = "connecting" | "live" | "error";
type Handler = (e: RteEvent) => void;
type StateHandler = (s: StreamState) => void;

const handlers = new Set<Handler>();
const stateHandlers = new Set<StateHandler>();
let source: EventSource | null = null;
let state: StreamState = "connecting";
let tokenVersion = -1;

function setState(s: StreamState) {
  state = s;
  for (const h of stateHandlers) h(s);
}

function deliver(msg: MessageEvent) {
  let ev: RteEvent;
  try {
    ev = JSON.parse(msg.data);
  } catch {
    return;
  }
  if (msg.type === "lagged") {
    // The host dropped events for this slow client: say so, so that views can refetch.
    ev = { type: "lagged", tx_id: null, tx_type: null, step_name: null, error: null, data: { ...ev }, timestamp: new Date().toISOString() };
  } else if (!ev.type && msg.type !== "message") ev.type = msg.type;
  for (const h of handlers) h(ev);
}

function open() {
  source?.close();
  tokenVersion = auth.version;
  setState("connecting");
  const es = new EventSource(streamUrl());
  source = es;
  es.onopen = () => setState("live");
  // EventSource keeps retrying by itself; report the gap meanwhile.
  es.onerror = () => setState(es.readyState === EventSource.CLOSED ? "error" : "connecting");
  es.onmessage = deliver;
  for (const t of [...EVENT_TYPES, "lagged"]) es.addEventListener(t, deliver as EventListener);
}

function close() {
  source?.close();
  source = null;
}

auth.subscribe(() => {
  if (source && tokenVersion !== auth.version) open();
});

/** Listen to live events; returns the unsubscribe function. */
export function subscribe(handler: Handler, onState?: StateHandler): () => void {
  handlers.add(handler);
  if (onState) {
    stateHandlers.add(onState);
    onState(state);
  }
  if (!source) open();
  return () => {
    handlers.delete(handler);
    if (onState) stateHandlers.delete(onState);
    if (handlers.size === 0) close();
  };
}
