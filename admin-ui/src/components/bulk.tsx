// Bulk actions on the transaction list's current filter: a preview of how many sagas the
// host would act on, a reason, then each saga's outcome.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { bulkFilter, type TxFilters } from "../lib/query";
import { statusLabel } from "../lib/status";
import { Link } from "../router";
import type { BulkResponse } from "../types";
import { Breakable, StatusBadge } from "./ui";

export type BulkAction = "retry" | "force-cancel";

const LABELS: Record<BulkAction, { title: string; verb: string; text: string }> = {
  retry: {
    title: "Retry the sagas this filter selects",
    verb: "Retry",
    text: "Each failed or timed-out saga runs again from where it stopped; a saga whose compensation failed resumes its compensation. Sagas in other statuses are refused, each with its reason.",
  },
  "force-cancel": {
    title: "Force-cancel the sagas this filter selects",
    verb: "Force cancel",
    text: "Each saga stops and its completed steps are compensated, in reverse order.",
  },
};

export function BulkDialog({ filters, onClose, onDone }: { filters: TxFilters; onClose: () => void; onDone: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [action, setAction] = useState<BulkAction>("retry");
  const [reason, setReason] = useState("");
  const [preview, setPreview] = useState<BulkResponse | null>(null);
  const [result, setResult] = useState<BulkResponse | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (ref.current && !ref.current.open) ref.current.showModal();
  }, []);
  useEffect(() => {
    let live = true;
    setPreview(null);
    api<BulkResponse>("/api/transactions/bulk", { method: "POST", json: { action, filter: bulkFilter(filters), dry_run: true } })
      .then((p) => live && setPreview(p))
      .catch((e: ApiError) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [action, filters]);

  const l = LABELS[action];
  const needReason = action === "force-cancel";
  const count = preview?.results.length ?? 0;
  const blocked = busy || !preview || count === 0 || (needReason && !reason.trim());
  return (
    <dialog ref={ref} class="dialog dialog-wide" aria-labelledby="bulk-title" onClose={onClose} onCancel={(e) => busy && e.preventDefault()}>
      <form
        method="dialog"
        onSubmit={async (e) => {
          e.preventDefault();
          if (blocked) return;
          setBusy(true);
          setError(null);
          try {
            const body: Record<string, unknown> = { action, filter: bulkFilter(filters) };
            if (reason.trim()) body.reason = reason.trim();
            setResult(await api<BulkResponse>("/api/transactions/bulk", { method: "POST", json: body }));
            onDone();
          } catch (err) {
            setError((err as ApiError).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h2 id="bulk-title">{l.title}</h2>
        {result ? (
          <BulkOutcome result={result} />
        ) : (
          <>
            <fieldset class="options" disabled={busy}>
              <legend>Action</legend>
              {(["retry", "force-cancel"] as const).map((a) => (
                <label key={a} class="check">
                  <input type="radio" name="bulk-action" value={a} checked={action === a} onChange={() => setAction(a)} /> {LABELS[a].verb}
                </label>
              ))}
            </fieldset>
            <p class="dialog-body">{l.text}</p>
            <p class="bulk-preview" role="status">
              {preview == null ? (
                "Counting…"
              ) : (
                <>
                  <strong>{count.toLocaleString()}</strong> {count === 1 ? "saga" : "sagas"} ({filters.status.map(statusLabel).join(", ")}) will be
                  acted on
                  {preview.remaining ? `; ${preview.remaining.toLocaleString()} more match and need another run (at most ${count} at a time)` : ""}.
                </>
              )}
            </p>
            <label class="label" for="bulk-reason">
              Reason{needReason ? "" : " (optional)"}
            </label>
            <textarea id="bulk-reason" rows={2} value={reason} placeholder="Why? Recorded in each saga's history." onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
          </>
        )}
        {error ? (
          <p class="form-error" role="alert">
            {error}
          </p>
        ) : null}
        <div class="dialog-actions">
          <button type="button" class="btn" onClick={() => ref.current?.close()} disabled={busy}>
            {result ? "Close" : "Cancel"}
          </button>
          {result ? null : (
            <button type="submit" class={`btn ${action === "force-cancel" ? "btn-danger" : "btn-primary"}`} disabled={blocked}>
              {busy ? "Working…" : `${l.verb} ${count.toLocaleString()} ${count === 1 ? "saga" : "sagas"}`}
            </button>
          )}
        </div>
      </form>
    </dialog>
  );
}

function BulkOutcome({ result }: { result: BulkResponse }) {
  return (
    <>
      <p role="status" class="bulk-summary">
        {result.succeeded.toLocaleString()} accepted, {result.failed.toLocaleString()} refused
        {result.remaining ? `; ${result.remaining.toLocaleString()} more match the filter` : ""}.
      </p>
      <div class="table-wrap bulk-results">
        <table>
          <thead>
            <tr>
              <th scope="col">Transaction</th>
              <th scope="col">Before</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {result.results.map((r) => (
              <tr key={r.tx_id} class={r.ok ? "bulk-ok" : "bulk-refused"}>
                <td>
                  <Link class="mono tx-link" href={`/transactions/${encodeURIComponent(r.tx_id)}`}>
                    {r.tx_id}
                  </Link>
                </td>
                <td>
                  <StatusBadge status={r.status_before} />
                </td>
                <td>
                  {r.ok ? (
                    <>✔ now {r.status ? <StatusBadge status={r.status} /> : "accepted"}</>
                  ) : (
                    <span class="err-text">
                      ✖ refused: <Breakable text={r.error?.message ?? "refused"} />
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
