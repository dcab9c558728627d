-- Search by a saga's input: one row per top-level key of the input whose value is a
-- string, number or boolean (strings without their quotes, numbers and booleans as their
-- JSON text), written with the saga. Keys over 128 and values over 255 characters are
-- left out, so an equality match on this table is exact. The search index leads with the
-- key and value and keeps the list's order (newest first) inside each value.
CREATE TABLE rte_tx_input (
    tx_id        TEXT NOT NULL,
    input_key    TEXT NOT NULL,
    input_value  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tx_id, input_key)
);
CREATE INDEX rte_tx_input_search ON rte_tx_input (input_key, input_value, created_at, tx_id);

-- Sagas stored before. An input holding the character NUL (which jsonb cannot hold) is
-- left out (as the store does for new sagas).
INSERT INTO rte_tx_input (tx_id, input_key, input_value, created_at)
SELECT t.tx_id, e.key, e.value #>> '{}', t.created_at
FROM rte_transactions t
CROSS JOIN LATERAL jsonb_each(t.input::jsonb) AS e
WHERE position('\u0000' IN t.input) = 0
  AND jsonb_typeof(t.input::jsonb) = 'object'
  AND jsonb_typeof(e.value) IN ('string', 'number', 'boolean')
  AND char_length(e.key) <= 128
  AND char_length(e.value #>> '{}') <= 255;
