import { expect, it } from "vitest";
import { barGroups, donutSlices, niceMax } from "./charts";

it("slices the donut by share, skipping zeros", () => {
  const s = donutSlices([["COMPLETED", 3], ["FAILED", 0], ["COMPENSATED", 1]], 50, 50, 40, 25);
  expect(s.map((x) => x.key)).toEqual(["COMPLETED", "COMPENSATED"]);
  expect(s[0].fraction).toBeCloseTo(0.75);
  expect(s[0].path).toMatch(/^M 50.00 10.00 A 40 40 0 1 1 /);
  expect(donutSlices([["A", 0]], 50, 50, 40, 25)).toEqual([]);
  // a single status still draws a (nearly) full ring
  expect(donutSlices([["A", 5]], 50, 50, 40, 25)[0].path).toContain(" 0 1 1 ");
});

it("scales bars to a nice maximum", () => {
  expect(niceMax(0)).toBe(1);
  expect(niceMax(7)).toBe(10);
  expect(niceMax(13)).toBe(20);
  expect(niceMax(50)).toBe(50);
  const { groups, max } = barGroups(
    [
      { at: "a", completed: 4, failed: 1 },
      { at: "b", completed: 0, failed: 5 },
    ],
    { x: 0, y: 0, width: 100, height: 50 },
  );
  expect(max).toBe(5);
  expect(groups[0].completed).toEqual({ y: 10, height: 40 });
  expect(groups[1].failed).toEqual({ y: 0, height: 50 });
  expect(groups[1].x).toBeGreaterThan(groups[0].x);
});
