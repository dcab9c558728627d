// Geometry of the dashboard's two SVG charts.

export interface DonutSlice {
  key: string;
  value: number;
  fraction: number;
  path: string;
}

function point(cx: number, cy: number, r: number, angle: number): string {
  return `${(cx + r * Math.sin(angle)).toFixed(2)} ${(cy - r * Math.cos(angle)).toFixed(2)}`;
}

/** Ring slices (clockwise from 12 o'clock) for the non-zero entries. */
export function donutSlices(entries: [string, number][], cx: number, cy: number, r: number, inner: number): DonutSlice[] {
  const items = entries.filter(([, v]) => v > 0);
  const total = items.reduce((n, [, v]) => n + v, 0);
  if (total === 0) return [];
  let a = 0;
  return items.map(([key, value]) => {
    const fraction = value / total;
    // A full ring cannot be one arc: stop just short of it.
    const sweep = Math.min(fraction * 2 * Math.PI, 2 * Math.PI - 1e-4);
    const a1 = a + sweep;
    const large = sweep > Math.PI ? 1 : 0;
    const path = [
      `M ${point(cx, cy, r, a)}`,
      `A ${r} ${r} 0 ${large} 1 ${point(cx, cy, r, a1)}`,
      `L ${point(cx, cy, inner, a1)}`,
      `A ${inner} ${inner} 0 ${large} 0 ${point(cx, cy, inner, a)}`,
      "Z",
    ].join(" ");
    a += fraction * 2 * Math.PI;
    return { key, value, fraction, path };
  });
}

export interface BarGroup {
  at: string;
  x: number;
  width: number;
  completed: { y: number; height: number };
  failed: { y: number; height: number };
}

/** Upper bound of the y axis: 1, 2, 5, 10, 20, 50, … at or above `max`. */
export function niceMax(max: number): number {
  if (max <= 0) return 1;
  const mag = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * mag >= max) return m * mag;
  return 10 * mag;
}

/** Side-by-side completed/failed bars per time bucket inside a plot box. */
export function barGroups(
  points: { at: string; completed: number; failed: number }[],
  box: { x: number; y: number; width: number; height: number },
): { groups: BarGroup[]; max: number } {
  const max = niceMax(Math.max(0, ...points.map((p) => Math.max(p.completed, p.failed))));
  const slot = points.length ? box.width / points.length : box.width;
  const w = Math.max(1, slot * 0.38);
  const h = (v: number) => (v / max) * box.height;
  const groups = points.map((p, i) => {
    const x = box.x + i * slot + slot * 0.1;
    const ch = h(p.completed);
    const fh = h(p.failed);
    return {
      at: p.at,
      x,
      width: w,
      completed: { y: box.y + box.height - ch, height: ch },
      failed: { y: box.y + box.height - fh, height: fh },
    };
  });
  return { groups, max };
}
