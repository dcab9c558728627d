// Draws a saga's timeline layout (see lib/timeline.ts) as SVG.

import { useEffect, useRef, useState } from "preact/hooks";
import { layoutTimeline } from "../lib/timeline";
import { TONE_COLOURS } from "../lib/status";
import type { TxView } from "../types";

/**
 * Lays out at the figure's real width, so that text keeps its size at any window width.
 * Drawn from the saga's stored attempts and history only (not the host's event log).
 */
export function Timeline({ tx, now }: { tx: TxView; now: number }) {
  const ref = useRef<HTMLElement>(null);
  const [width, setWidth] = useState(960);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(Math.max(480, Math.round(el.clientWidth))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const l = layoutTimeline(tx, { now, width });
  const bars = l.rows.flatMap((r) => r.bars);
  const has = (f: (b: (typeof bars)[number]) => boolean) => bars.some(f);
  if (!l.rows.length) return <p class="muted">This saga has no steps.</p>;
  return (
    <figure class="timeline" ref={ref}>
      <svg viewBox={`0 0 ${l.width} ${l.height}`} width={l.width} height={l.height} role="img" aria-label="Timeline of step attempts: executions, compensations and confirms">
        <defs>
          <pattern id="running" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
            <rect width="8" height="8" fill={TONE_COLOURS.run} />
            <rect width="4" height="8" fill="#fff" opacity="0.3" />
          </pattern>
        </defs>
        {l.ticks.map((t) => (
          <g key={t.x}>
            <line x1={t.x} x2={t.x} y1={l.axisHeight - 6} y2={l.height} class="gridline" />
            <text x={t.x} y={l.axisHeight - 10} text-anchor="middle" class="axis-label">
              {t.label}
            </text>
          </g>
        ))}
        {l.rows.map((r, i) => {
          const mid = r.y + l.rowHeight / 2;
          return (
            <g key={r.index} class="timeline-row" data-step={r.index}>
              {i % 2 ? <rect x="0" y={r.y} width={l.width} height={l.rowHeight} class="row-stripe" /> : null}
              <text x="8" y={mid + 4} class="step-label">
                {r.index + 1}. {r.name.length > 18 ? `${r.name.slice(0, 17)}…` : r.name}
                <title>{r.note ? `${r.name} (${r.note})` : r.name}</title>
              </text>
              {r.bars.map((b, j) => {
                const upper = b.kind === "execute";
                const h = upper ? 12 : 8;
                const y = upper ? mid - 10 : mid + 3;
                return (
                  <rect
                    key={j}
                    x={b.x}
                    y={y}
                    width={b.width}
                    height={h}
                    rx="2"
                    fill={b.running ? "url(#running)" : TONE_COLOURS[b.tone]}
                    class={`bar bar-${b.kind} outcome-${b.outcome}`}
                    data-attempt={b.attempt ?? undefined}
                    data-failure-kind={b.failureKind ?? undefined}
                    data-host={b.host ?? undefined}
                  >
                    <title>{b.title}</title>
                  </rect>
                );
              })}
              {r.markers.map((m, j) => (
                <g key={j} class="marker">
                  <circle cx={m.x} cy={mid - 4} r="5" fill={TONE_COLOURS.bad} stroke="#fff" />
                  <text x={m.x} y={mid - 1} text-anchor="middle" class="marker-x">
                    !
                  </text>
                  <title>{m.title}</title>
                </g>
              ))}
            </g>
          );
        })}
        {l.marks.map((m, i) => (
          <g key={`m${i}`} class={`history-mark${m.actor ? ` history-mark-${m.actor}` : ""}`}>
            <line x1={m.x} x2={m.x} y1={l.axisHeight - 4} y2={l.height} />
            <circle cx={m.x} cy={l.axisHeight - 4} r="3.5" />
            <title>{m.title}</title>
          </g>
        ))}
      </svg>
      <figcaption class="chart-key">
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.ok }} /> execute attempt
        </span>
        <span>
          <span class="swatch swatch-thin" style={{ background: TONE_COLOURS.undone }} /> compensate
        </span>
        {has((b) => b.kind === "confirm") ? (
          <span>
            <span class="swatch swatch-thin" style={{ background: TONE_COLOURS.ok }} /> confirm
          </span>
        ) : null}
        {has((b) => b.outcome === "nothing_to_undo") ? (
          <span>
            <span class="swatch swatch-thin" style={{ background: TONE_COLOURS.muted }} /> nothing to undo
          </span>
        ) : null}
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.run }} /> running
        </span>
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.bad }} /> failed attempt
        </span>
        {l.marks.length ? <span>┆ operator or recovery action</span> : null}
        <span class="muted">hover a bar for its outcome, host and plugin</span>
      </figcaption>
    </figure>
  );
}
