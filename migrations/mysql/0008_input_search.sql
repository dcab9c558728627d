-- Search by a saga's input: one row per top-level key of the input whose value is a
-- string, number or boolean (strings without their quotes, numbers and booleans as their
-- JSON text), written with the saga. Keys over 128 and values over 255 characters are
-- left out, so an equality match on this table is exact. The search index leads with the
-- key and value and keeps the list's order (newest first) inside each value. Keys and
-- values are compared as bytes: a text collation would pad, and find `a` for `a `.
CREATE TABLE rte_tx_input (
    tx_id        VARCHAR(64) NOT NULL,
    input_key    VARBINARY(512) NOT NULL,
    input_value  VARBINARY(1020) NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tx_id, input_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rte_tx_input_search ON rte_tx_input (input_key, input_value, created_at, tx_id);

-- Sagas stored before. An input holding the character NUL is left out (as the store does
-- for new sagas).
INSERT INTO rte_tx_input (tx_id, input_key, input_value, created_at)
SELECT s.tx_id, s.input_key, s.input_value, s.created_at
FROM (
    SELECT t.tx_id, k.name AS input_key,
           JSON_UNQUOTE(JSON_EXTRACT(t.input, CONCAT('$.', JSON_QUOTE(k.name)))) AS input_value,
           JSON_TYPE(JSON_EXTRACT(t.input, CONCAT('$.', JSON_QUOTE(k.name)))) AS value_type,
           t.created_at
    FROM rte_transactions t,
         JSON_TABLE(JSON_KEYS(t.input), '$[*]' COLUMNS (name VARCHAR(1024) CHARACTER SET utf8mb4 PATH '$')) AS k
    WHERE LOCATE('\\u0000', t.input) = 0
      AND JSON_TYPE(t.input) = 'OBJECT'
) AS s
WHERE s.value_type IN ('STRING', 'INTEGER', 'UNSIGNED INTEGER', 'DOUBLE', 'DECIMAL', 'BOOLEAN')
  AND CHAR_LENGTH(s.input_key) <= 128
  AND CHAR_LENGTH(s.input_value) <= 255;
