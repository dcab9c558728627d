// A modal confirmation that asks for a reason (and optional extra fields). Uses <dialog>,
// which traps focus and closes on Escape.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

export interface ConfirmProps {
  title: string;
  description: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  reasonRequired?: boolean;
  extra?: ComponentChildren;
  error?: string | null;
  busy?: boolean;
  /** What the reason is recorded in. */
  placeholder?: string;
  onConfirm: (reason: string) => void;
  onClose: () => void;
}

export function ConfirmDialog(p: ConfirmProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  const blocked = p.busy || (p.reasonRequired && !reason.trim());
  return (
    <dialog
      ref={ref}
      class="dialog"
      aria-labelledby="dialog-title"
      onClose={p.onClose}
      onCancel={(e) => {
        if (p.busy) e.preventDefault();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (!blocked) p.onConfirm(reason.trim());
        }}
      >
        <h2 id="dialog-title">{p.title}</h2>
        <div class="dialog-body">{p.description}</div>
        <label class="label" for="dialog-reason">
          Reason{p.reasonRequired ? "" : " (optional)"}
        </label>
        <textarea
          id="dialog-reason"
          rows={3}
          value={reason}
          required={p.reasonRequired}
          placeholder={p.placeholder ?? "Why? Recorded in the saga's history."}
          onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)}
        />
        {p.extra}
        {p.error ? (
          <p class="form-error" role="alert">
            {p.error}
          </p>
        ) : null}
        <div class="dialog-actions">
          <button type="button" class="btn" onClick={() => ref.current?.close()} disabled={p.busy}>
            Cancel
          </button>
          <button type="submit" class={`btn ${p.danger ? "btn-danger" : "btn-primary"}`} disabled={blocked}>
            {p.busy ? "Working…" : p.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
