// Test helper: expand a Preact element tree without a DOM, for components that use no hooks.

import type { ComponentChildren, VNode } from "preact";

/** An element of the expanded tree. */
export interface El {
  tag: string;
  props: Record<string, unknown>;
  children: Node[];
}
export type Node = El | string;

/** Expand `node`, calling function components (and fragments) down to elements and text. */
export function expand(node: ComponentChildren): Node[] {
  if (node == null || typeof node === "boolean") return [];
  if (typeof node === "string" || typeof node === "number" || typeof node === "bigint") return [String(node)];
  if (Array.isArray(node)) return node.flatMap(expand);
  const v = node as VNode<Record<string, unknown>>;
  if (typeof v.type === "function") return expand((v.type as (p: unknown) => ComponentChildren)(v.props));
  const { children, ...props } = v.props as Record<string, unknown> & { children?: ComponentChildren };
  return [{ tag: String(v.type), props, children: expand(children) }];
}

/** The text of a tree, with runs of white space collapsed. */
export function text(nodes: Node | Node[]): string {
  const all = (n: Node | Node[]): string =>
    Array.isArray(n) ? n.map(all).join("") : typeof n === "string" ? n : all(n.children);
  return all(nodes).replace(/\s+/g, " ").trim();
}

/** Every element matching `pick` (a tag name, or a test), in document order. */
export function findAll(nodes: Node | Node[], pick: string | ((e: El) => boolean)): El[] {
  const test = typeof pick === "string" ? (e: El) => e.tag === pick : pick;
  const out: El[] = [];
  const walk = (n: Node) => {
    if (typeof n === "string") return;
    if (test(n)) out.push(n);
    n.children.forEach(walk);
  };
  (Array.isArray(nodes) ? nodes : [nodes]).forEach(walk);
  return out;
}

/** Elements with the CSS class `name`. */
export const hasClass = (name: string) => (e: El) => String(e.props.class ?? "").split(/\s+/).includes(name);
