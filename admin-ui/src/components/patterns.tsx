// Fills for charts: the failure statuses get a pattern over their colour, so that a chart
// does not depend on colour alone (hatched: failed, cross-hatched: compensation failed,
// dotted: timed out).

import { statusColour } from "../lib/status";

const PATTERNED: Record<string, "hatch" | "cross" | "dots"> = {
  FAILED: "hatch",
  COMPENSATION_FAILED: "cross",
  TIMEOUT: "dots",
};

/** The SVG fill of a status: its colour, or a pattern defined by <StatusPatterns />. */
export function statusFill(status: string): string {
  return PATTERNED[status] ? `url(#pattern-${status})` : statusColour(status);
}

/** Pattern definitions; render once inside an <svg> on the page that uses statusFill. */
export function StatusPatterns() {
  return (
    <defs>
      {Object.entries(PATTERNED).map(([status, kind]) => (
        <pattern key={status} id={`pattern-${status}`} patternUnits="userSpaceOnUse" width="6" height="6" patternTransform={kind === "dots" ? undefined : "rotate(45)"}>
          <rect width="6" height="6" fill={statusColour(status)} />
          {kind === "dots" ? (
            <circle cx="3" cy="3" r="1.3" fill="#fff" opacity="0.8" />
          ) : (
            <>
              <line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="1.6" opacity="0.75" />
              {kind === "cross" ? <line x1="0" y1="3" x2="6" y2="3" stroke="#fff" stroke-width="1.6" opacity="0.75" /> : null}
            </>
          )}
        </pattern>
      ))}
    </defs>
  );
}

/** A legend swatch drawn with the status's fill. */
export function StatusSwatch({ status }: { status: string }) {
  return (
    <svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">
      <rect width="10" height="10" fill={statusFill(status)} />
    </svg>
  );
}
