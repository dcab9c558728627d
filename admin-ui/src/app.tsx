// The shell: navigation, token prompt and the route table.

import { useEffect, useRef, useState } from "preact/hooks";
import { auth } from "./api";
import { useAuthVersion } from "./hooks";
import { Dashboard } from "./pages/dashboard";
import { Transactions } from "./pages/transactions";
import { TxDetail } from "./pages/detail";
import { Recovery } from "./pages/recovery";
import { Breakers } from "./pages/breakers";
import { Events } from "./pages/events";
import { Plugins } from "./pages/plugins";
import { StartSaga } from "./pages/start";
import { Link, useLocation } from "./router";

const NAV: { href: string; label: string }[] = [
  { href: "/", label: "Dashboard" },
  { href: "/transactions", label: "Transactions" },
  { href: "/start", label: "Start saga" },
  { href: "/events", label: "Events" },
  { href: "/recovery", label: "Recovery" },
  { href: "/circuit-breakers", label: "Circuit breakers" },
  { href: "/plugins", label: "Plugins" },
];

function route(path: string, search: string) {
  const p = path.replace(/\/+$/, "") || "/";
  if (p === "/") return <Dashboard />;
  if (p === "/transactions") return <Transactions search={search} />;
  const m = /^\/transactions\/([^/]+)$/.exec(p);
  if (m) return <TxDetail txId={decodeURIComponent(m[1])} />;
  if (p === "/start") return <StartSaga search={search} />;
  if (p === "/events") return <Events search={search} />;
  if (p === "/recovery") return <Recovery />;
  if (p === "/circuit-breakers") return <Breakers />;
  if (p === "/plugins") return <Plugins />;
  return (
    <div class="state state-empty">
      <strong>Page not found</strong>
      <p class="muted">
        There is no page at <code>{path}</code>. <Link href="/">Go to the dashboard</Link>.
      </p>
    </div>
  );
}

function active(href: string, path: string): boolean {
  return href === "/" ? path === "/" : path === href || path.startsWith(href + "/");
}

export function App() {
  const { path, search } = useLocation();
  useAuthVersion();
  const [needed, setNeeded] = useState(auth.needed);
  const [locked, setLocked] = useState(auth.locked);
  useEffect(
    () =>
      auth.subscribe(() => {
        setNeeded(auth.needed);
        setLocked(auth.locked);
      }),
    [],
  );
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    const title = NAV.find((n) => active(n.href, path))?.label ?? "RTE";
    document.title = path.startsWith("/transactions/") ? "Transaction · RTE" : `${title} · RTE`;
  }, [path]);

  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <nav class="sidebar" aria-label="Main">
        <Link href="/" class="brand">
          <span class="brand-mark" aria-hidden="true">
            R
          </span>
          <span>
            RTE <small>console</small>
          </span>
        </Link>
        <ul>
          {NAV.map((n) => (
            <li key={n.href}>
              <Link href={n.href} class={active(n.href, path) ? "nav-link active" : "nav-link"} aria-current={active(n.href, path) ? "page" : undefined}>
                {n.label}
              </Link>
            </li>
          ))}
        </ul>
        <div class="sidebar-foot">
          {auth.token() ? (
            <button type="button" class="btn btn-small btn-ghost" onClick={() => auth.setToken(null)}>
              Forget token
            </button>
          ) : null}
        </div>
      </nav>
      <main id="main" ref={main} tabIndex={-1}>
        {locked ? (
          <div class="state locked" role="status">
            <strong>Token forgotten</strong>
            <p class="muted">What was loaded is hidden. Enter the admin token to continue.</p>
          </div>
        ) : (
          route(path, search)
        )}
      </main>
      {needed ? <TokenPrompt /> : null}
    </div>
  );
}

function TokenPrompt() {
  const ref = useRef<HTMLDialogElement>(null);
  const [value, setValue] = useState("");
  const had = !!auth.token();
  useEffect(() => {
    if (ref.current && !ref.current.open) ref.current.showModal();
  }, []);
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="token-title" onCancel={(e) => e.preventDefault()}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) auth.setToken(value.trim());
        }}
      >
        <h2 id="token-title">Admin token required</h2>
        <p class="dialog-body">
          {had ? "The host refused the token in use. " : ""}This host protects its API with a bearer token. It is kept for 12 hours
          in this browser, for every tab of the console; "Forget token" removes it from all of them.
        </p>
        <label class="label" for="token-input">
          Token
        </label>
        <input id="token-input" type="password" autocomplete="off" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
        <div class="dialog-actions">
          <button type="submit" class="btn btn-primary" disabled={!value.trim()}>
            Continue
          </button>
        </div>
      </form>
    </dialog>
  );
}
