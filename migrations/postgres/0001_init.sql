-- RTE schema (PostgreSQL). Times are Unix milliseconds; JSON is stored as text.
CREATE TABLE rte_transactions (
    tx_id           TEXT PRIMARY KEY,
    tx_type         TEXT NOT NULL,
    status          TEXT NOT NULL,
    input           TEXT NOT NULL,
    outputs         TEXT NOT NULL,
    lock_keys       TEXT NOT NULL,
    current_step    BIGINT NOT NULL,
    total_steps     BIGINT NOT NULL,
    retry_count     BIGINT NOT NULL,
    max_retries     BIGINT NOT NULL,
    timeout_ms      BIGINT NOT NULL,
    deadline_at     BIGINT NOT NULL,
    last_error      TEXT,
    version         BIGINT NOT NULL,
    request_key     TEXT UNIQUE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT
);
CREATE INDEX rte_tx_status_created ON rte_transactions (status, created_at);
CREATE INDEX rte_tx_type_created ON rte_transactions (tx_type, created_at);
CREATE INDEX rte_tx_created ON rte_transactions (created_at);
CREATE INDEX rte_tx_status_updated ON rte_transactions (status, updated_at);
CREATE INDEX rte_tx_completed ON rte_transactions (completed_at);

CREATE TABLE rte_steps (
    tx_id                  TEXT NOT NULL,
    step_index             BIGINT NOT NULL,
    step_name              TEXT NOT NULL,
    status                 TEXT NOT NULL,
    attempts               BIGINT NOT NULL,
    compensation_attempts  BIGINT NOT NULL,
    output                 TEXT,
    error                  TEXT,
    idempotency_key        TEXT,
    plugin_digest          TEXT,
    started_at             BIGINT,
    finished_at            BIGINT,
    PRIMARY KEY (tx_id, step_index)
);

CREATE TABLE rte_idempotency (
    idem_key    TEXT PRIMARY KEY,
    step_name   TEXT NOT NULL,
    tx_id       TEXT NOT NULL,
    output      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX rte_idem_expires ON rte_idempotency (expires_at);

CREATE TABLE rte_kv (
    namespace   TEXT NOT NULL,
    kv_key      TEXT NOT NULL,
    kv_value    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, kv_key)
);

CREATE TABLE rte_history (
    id      BIGSERIAL PRIMARY KEY,
    tx_id   TEXT NOT NULL,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX rte_history_tx ON rte_history (tx_id, id);
