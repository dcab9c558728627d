-- Steps that wait for a reply, and messages that leave only once their step committed.
--
-- A wait is keyed by its correlation id. The reply (or the deadline passing) is recorded
-- once (replied_at), and the step's next commit closes the wait (closed_at): a second
-- reply of the same wait finds it replied, and one after the step moved on finds it
-- closed; neither is applied again.
CREATE TABLE rte_waits (
    correlation_id  VARCHAR(255) PRIMARY KEY,
    tx_id           VARCHAR(64) NOT NULL,
    step_index      BIGINT NOT NULL,
    phase           VARCHAR(16) NOT NULL,
    attempt         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    deadline_at     BIGINT NOT NULL,
    replied_at      BIGINT,
    reply           MEDIUMTEXT,
    closed_at       BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rte_waits_tx ON rte_waits (tx_id);
CREATE INDEX rte_waits_due ON rte_waits (closed_at, replied_at, deadline_at);

-- The transactional outbox: written in the commit of the step call that published, sent
-- after it, and marked sent once the broker acknowledged it. The id (saga, step, phase,
-- attempt, position) is also the broker's deduplication id.
CREATE TABLE rte_outbox (
    message_id  VARCHAR(255) PRIMARY KEY,
    tx_id       VARCHAR(64) NOT NULL,
    subject     VARCHAR(255) NOT NULL,
    payload     LONGBLOB NOT NULL,
    headers     MEDIUMTEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rte_outbox_unsent ON rte_outbox (sent_at, created_at);
CREATE INDEX rte_outbox_tx ON rte_outbox (tx_id);
