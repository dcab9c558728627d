// Narrow windows show each table row as a block of "label value" lines (see styles.css):
// every body cell carries its column's heading as `data-label`.

/** Give every body cell of `table` the text of its column's heading, counting spans. */
export function labelCells(table: HTMLTableElement): void {
  const heads: string[] = [];
  for (const th of table.tHead?.rows[0]?.cells ?? []) {
    const text = (th.textContent ?? "").replace(/\s+/g, " ").trim();
    for (let i = 0; i < th.colSpan; i++) heads.push(text);
  }
  if (!heads.length) return;
  for (const body of table.tBodies) {
    for (const row of body.rows) {
      let col = 0;
      for (const cell of row.cells) {
        const label = cell.colSpan > 1 ? "" : (heads[col] ?? "");
        if (cell.getAttribute("data-label") !== label) cell.setAttribute("data-label", label);
        col += cell.colSpan;
      }
    }
  }
}

/** Keep the cells of every table under `root` labelled as the page changes. */
export function keepCellsLabelled(root: HTMLElement): void {
  let queued = false;
  const run = () => {
    queued = false;
    for (const t of root.querySelectorAll("table")) labelCells(t);
  };
  new MutationObserver(() => {
    if (!queued) {
      queued = true;
      queueMicrotask(run);
    }
  }).observe(root, { childList: true, subtree: true, characterData: true });
  run();
}
