-- Steps that wait for a reply, and messages that leave only once their step committed.
--
-- A wait is keyed by its correlation id. The reply (or the deadline passing) is recorded
-- once (replied_at), and the step's next commit closes the wait (closed_at): a second
-- reply of the same wait finds it replied, and one after the step moved on finds it
-- closed; neither is applied again.
CREATE TABLE rte_waits (
    correlation_id  TEXT PRIMARY KEY,
    tx_id           TEXT NOT NULL,
    step_index      INTEGER NOT NULL,
    phase           VARCHAR(16) NOT NULL,
    attempt         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    deadline_at     INTEGER NOT NULL,
    replied_at      INTEGER,
    reply           TEXT,
    closed_at       INTEGER
);
CREATE INDEX rte_waits_tx ON rte_waits (tx_id);
CREATE INDEX rte_waits_due ON rte_waits (closed_at, replied_at, deadline_at);

-- The transactional outbox: written in the commit of the step call that published, sent
-- after it, and marked sent once the broker acknowledged it. The id (saga, step, phase,
-- attempt, position) is also the broker's deduplication id.
CREATE TABLE rte_outbox (
    message_id  TEXT PRIMARY KEY,
    tx_id       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    payload     BLOB NOT NULL,
    headers     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER
);
CREATE INDEX rte_outbox_unsent ON rte_outbox (sent_at, created_at);
CREATE INDEX rte_outbox_tx ON rte_outbox (tx_id);
