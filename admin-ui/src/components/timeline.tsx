// Draws a saga's timeline layout (see lib/timeline.ts) as SVG.

import { useEffect, useRef, useState } from "preact/hooks";
import { layoutTimeline } from "../lib/timeline";
import { TONE_COLOURS } from "../lib/status";
import type { RteEvent, TxView } from "../types";

/** Lays out at the figure's real width, so that text keeps its size at any window width. */
export function Timeline({ tx, events, now }: { tx: TxView; events: RteEvent[]; now: number }) {
  const ref = useRef<HTMLElement>(null);
  const [width, setWidth] = useState(960);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(Math.max(480, Math.round(el.clientWidth))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const l = layoutTimeline(tx, events, { now, width });
  if (!l.rows.length) return <p class="muted">This saga has no steps.</p>;
  return (
    <figure class="timeline" ref={ref}>
      <svg viewBox={`0 0 ${l.width} ${l.height}`} width={l.width} height={l.height} role="img" aria-label="Timeline of step executions and compensations">
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
            <g key={r.index}>
              {i % 2 ? <rect x="0" y={r.y} width={l.width} height={l.rowHeight} class="row-stripe" /> : null}
              <text x="8" y={mid + 4} class="step-label">
                {r.index + 1}. {r.name.length > 18 ? `${r.name.slice(0, 17)}…` : r.name}
                <title>{r.name}</title>
              </text>
              {r.bars.map((b) => {
                const h = b.kind === "execute" ? 12 : 8;
                const y = b.kind === "execute" ? mid - 10 : mid + 3;
                return (
                  <rect
                    key={b.kind}
                    x={b.x}
                    y={y}
                    width={b.width}
                    height={h}
                    rx="2"
                    fill={b.running ? "url(#running)" : TONE_COLOURS[b.tone]}
                    class={`bar bar-${b.kind}`}
                  >
                    <title>{b.title}</title>
                  </rect>
                );
              })}
              {r.markers.map((m, j) =>
                m.kind === "retry" ? (
                  <path key={j} d={`M ${m.x} ${mid - 13} l 4 -5 h -8 z`} fill={TONE_COLOURS.warn} class="marker">
                    <title>{m.title}</title>
                  </path>
                ) : (
                  <g key={j} class="marker">
                    <circle cx={m.x} cy={mid - 4} r="5" fill={TONE_COLOURS.bad} stroke="#fff" />
                    <text x={m.x} y={mid - 1} text-anchor="middle" class="marker-x">
                      !
                    </text>
                    <title>{m.title}</title>
                  </g>
                ),
              )}
            </g>
          );
        })}
        {l.marks.map((m, i) => (
          <g key={`m${i}`} class="history-mark">
            <line x1={m.x} x2={m.x} y1={l.axisHeight - 4} y2={l.height} />
            <circle cx={m.x} cy={l.axisHeight - 4} r="3.5" />
            <title>{m.title}</title>
          </g>
        ))}
      </svg>
      <figcaption class="chart-key">
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.ok }} /> execute
        </span>
        <span>
          <span class="swatch swatch-thin" style={{ background: TONE_COLOURS.warn }} /> compensate
        </span>
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.run }} /> running
        </span>
        <span>
          <span class="swatch" style={{ background: TONE_COLOURS.bad }} /> failed
        </span>
        <span>
          <span style={{ color: TONE_COLOURS.warn }}>▾</span> retried attempt
        </span>
        {l.marks.length ? <span>┆ operator action (hover for details)</span> : null}
      </figcaption>
    </figure>
  );
}
