-- Plugin state is serializable on its own: every row carries a version that a commit
-- compares before it writes (see the store's kv commit). A key created anew starts at a
-- random version, so a key deleted and created again never repeats one a reader saw.
ALTER TABLE rte_kv ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- An idempotency record belongs to one step of one plugin: a key is matched only against
-- the same step of the same plugin. Records written before this scope existed cannot be
-- attributed to a plugin and would match nothing; they only ever shielded sagas in flight
-- (24 h by default), so they are dropped rather than kept unmatched.
DROP TABLE rte_idempotency;
CREATE TABLE rte_idempotency (
    plugin      TEXT NOT NULL,
    step_name   TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    tx_id       TEXT NOT NULL,
    output      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (plugin, step_name, idem_key)
);
CREATE INDEX rte_idem_expires ON rte_idempotency (expires_at);
