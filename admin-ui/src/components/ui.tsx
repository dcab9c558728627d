// Small shared pieces: status badge, loading/error/empty states, JSON block, copy button.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import type { ApiError } from "../api";
import { breakPieces, formatJson } from "../lib/format";
import { statusLabel, statusTone } from "../lib/status";

export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`badge tone-${statusTone(status)}`} title={status}>
      {statusLabel(status)}
    </span>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div class="state" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {label}
    </div>
  );
}

/** A failed load. A 404 of a whole endpoint means the host is older than this console. */
export function ErrorState({ error, onRetry, what }: { error: ApiError; onRetry?: () => void; what?: string }) {
  const missing = error.status === 404 && /endpoint/i.test(error.message);
  return (
    <div class="state state-error" role="alert">
      <strong>{what ? `Could not load ${what}` : "Something went wrong"}</strong>
      <p>
        {error.message}
        {error.status ? <span class="muted"> (HTTP {error.status})</span> : null}
      </p>
      {missing ? <p class="muted">This host does not offer this endpoint; it may be an older version.</p> : null}
      {onRetry ? (
        <button type="button" class="btn" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="state state-empty">
      <strong>{title}</strong>
      {children ? <div class="muted">{children}</div> : null}
    </div>
  );
}

export function JsonBlock({ value, label }: { value: unknown; label: string }) {
  const text = formatJson(value);
  return (
    <div class="json">
      <div class="json-head">
        <span>{label}</span>
        <CopyButton text={text} label={`Copy ${label.toLowerCase()}`} />
      </div>
      <pre tabIndex={0} aria-label={label}>
        {text || "null"}
      </pre>
    </div>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="btn btn-small btn-ghost"
      aria-label={label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
          setTimeout(() => setDone(false), 1200);
        } catch {
          /* clipboard unavailable (plain http): nothing to do */
        }
      }}
    >
      {done ? "Copied" : "Copy"}
    </button>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <header class="page-head">
      <h1>{title}</h1>
      <div class="page-actions">{children}</div>
    </header>
  );
}

export function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="field">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

/** Text whose long unbroken runs (hashes, URLs, padding) may wrap at fixed points, never mid-word elsewhere. */
export function Breakable({ text }: { text: string }) {
  const pieces = breakPieces(text);
  return <>{pieces.map((p, i) => (i ? [<wbr key={i} />, p] : p))}</>;
}
