// Answering a waiting step by hand: the body of POST /api/waits/{id}/reply.

export type ReplyKind = "payload" | "error";

/** The request body for an answer, or the reason it cannot be sent. */
export function replyBody(kind: ReplyKind, text: string, reason: string): { body: Record<string, unknown> } | { error: string } {
  const trimmed = text.trim();
  if (kind === "error") {
    if (!trimmed) return { error: "Say what the error is." };
    return { body: { error: trimmed, reason } };
  }
  if (!trimmed) return { body: { payload: null, reason } };
  try {
    return { body: { payload: JSON.parse(trimmed), reason } };
  } catch (e) {
    return { error: `The payload is not JSON: ${(e as Error).message}` };
  }
}

/** The path that answers the wait `correlationId`. */
export function replyPath(correlationId: string): string {
  return `/api/waits/${encodeURIComponent(correlationId)}/reply`;
}
