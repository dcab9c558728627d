// Parallel groups as the console shows them: a saga type's steps in one line, and where a
// saga stands when its current step is a branch of a group.
import type { StepEntry, StepView } from "../types";

/** A saga type's steps in one line: `reserve → [flight ∥ hotel ∥ car] → charge`. */
export function stepsLine(entries: StepEntry[]): string {
  return entries
    .map((e) => {
      if (typeof e === "string") return e;
      const cap = e.max_concurrent != null && e.max_concurrent < e.parallel.length ? ` (${e.max_concurrent} at a time)` : "";
      return `[${e.parallel.join(" ∥ ")}]${cap}`;
    })
    .join(" → ");
}

/** The steps of the group step `index` is a branch of, in order (empty for a step alone). */
export function groupOf(steps: StepView[], index: number): StepView[] {
  const first = steps.find((s) => s.step_index === index)?.group?.first;
  if (first == null) return [];
  return steps.filter((s) => s.group?.first === first).sort((a, b) => a.step_index - b.step_index);
}

/**
 * Where a saga whose current step is `current` stands, counted in steps: `2` for a step
 * alone, `2–4` for a group (1-based), with how many of the group's branches run.
 */
export function positionOf(steps: StepView[], current: number): { label: string; running: number; group: boolean } {
  const group = groupOf(steps, current);
  if (group.length === 0) return { label: String(current + 1), running: 0, group: false };
  const first = group[0].step_index + 1;
  const last = group[group.length - 1].step_index + 1;
  return { label: `${first}–${last}`, running: group.filter((s) => s.status === "EXECUTING").length, group: true };
}

/** `1st`, `2nd`, `3rd`, `4th`, … `11th`, `21st`. */
export function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" } as Record<number, string>)[n % 10] ?? "th";
  return `${n}${suffix}`;
}
