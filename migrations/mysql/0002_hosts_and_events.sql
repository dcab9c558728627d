-- Events shared between hosts on one database when no Redis relays them. Rows are kept
-- for minutes: each host reads the others' events from here into its own event log.
CREATE TABLE rte_events (
    id      BIGINT AUTO_INCREMENT PRIMARY KEY,
    origin  VARCHAR(64) NOT NULL,
    at      BIGINT NOT NULL,
    payload MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rte_events_at ON rte_events (at);

-- The hosts on this database: each writes its row every few seconds, with what it alone
-- knows (its recovery worker's figures, the plugins it loaded), so every host can answer
-- for all of them.
CREATE TABLE rte_hosts (
    host_id    VARCHAR(64) PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    info       MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
