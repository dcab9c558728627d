-- RTE schema (MySQL and MariaDB). Times are Unix milliseconds; JSON is stored as text.
CREATE TABLE rte_transactions (
    tx_id           VARCHAR(64) PRIMARY KEY,
    tx_type         VARCHAR(128) NOT NULL,
    status          VARCHAR(32) NOT NULL,
    input           MEDIUMTEXT NOT NULL,
    outputs         MEDIUMTEXT NOT NULL,
    lock_keys       TEXT NOT NULL,
    current_step    BIGINT NOT NULL,
    total_steps     BIGINT NOT NULL,
    retry_count     BIGINT NOT NULL,
    max_retries     BIGINT NOT NULL,
    timeout_ms      BIGINT NOT NULL,
    deadline_at     BIGINT NOT NULL,
    last_error      TEXT,
    version         BIGINT NOT NULL,
    request_key     VARCHAR(255) UNIQUE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rte_tx_status_created ON rte_transactions (status, created_at);
CREATE INDEX rte_tx_type_created ON rte_transactions (tx_type, created_at);
CREATE INDEX rte_tx_created ON rte_transactions (created_at);
CREATE INDEX rte_tx_status_updated ON rte_transactions (status, updated_at);
CREATE INDEX rte_tx_completed ON rte_transactions (completed_at);

CREATE TABLE rte_steps (
    tx_id                  VARCHAR(64) NOT NULL,
    step_index             BIGINT NOT NULL,
    step_name              VARCHAR(128) NOT NULL,
    status                 VARCHAR(32) NOT NULL,
    attempts               BIGINT NOT NULL,
    compensation_attempts  BIGINT NOT NULL,
    output                 MEDIUMTEXT,
    error                  TEXT,
    idempotency_key        TEXT,
    plugin_digest          TEXT,
    started_at             BIGINT,
    finished_at            BIGINT,
    PRIMARY KEY (tx_id, step_index)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE rte_idempotency (
    idem_key    VARCHAR(255) PRIMARY KEY,
    step_name   VARCHAR(128) NOT NULL,
    tx_id       VARCHAR(64) NOT NULL,
    output      MEDIUMTEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rte_idem_expires ON rte_idempotency (expires_at);

CREATE TABLE rte_kv (
    namespace   VARCHAR(128) NOT NULL,
    kv_key      VARCHAR(255) NOT NULL,
    kv_value    MEDIUMTEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, kv_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE rte_history (
    id      BIGINT AUTO_INCREMENT PRIMARY KEY,
    tx_id   VARCHAR(64) NOT NULL,
    at      BIGINT NOT NULL,
    kind    VARCHAR(64) NOT NULL,
    message TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rte_history_tx ON rte_history (tx_id, id);
