-- Events shared between hosts on one database when no Redis relays them. Rows are kept
-- for minutes: each host reads the others' events from here into its own event log.
CREATE TABLE rte_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    origin  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX rte_events_at ON rte_events (at);

-- The hosts on this database: each writes its row every few seconds, with what it alone
-- knows (its recovery worker's figures, the plugins it loaded), so every host can answer
-- for all of them.
CREATE TABLE rte_hosts (
    host_id    TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    info       TEXT NOT NULL
);
