-- The saga state machine is typed: a step's failure kind has its own column (nothing is
-- read back from an error's text), a compensation records what it is for, every attempt
-- of a step is kept with the step (written in the same statement as its change), and a
-- history line names who acted.
ALTER TABLE rte_steps ADD COLUMN failure_kind VARCHAR(32);
ALTER TABLE rte_steps ADD COLUMN attempt_log MEDIUMTEXT;
ALTER TABLE rte_transactions ADD COLUMN undo_cause VARCHAR(32);
ALTER TABLE rte_history ADD COLUMN actor MEDIUMTEXT;

-- Steps stored before: their kind was the prefix of their error.
UPDATE rte_steps SET failure_kind = 'trap' WHERE error LIKE 'trap:%';
UPDATE rte_steps SET failure_kind = 'timeout' WHERE error LIKE 'timeout:%';
UPDATE rte_steps SET failure_kind = 'permanent' WHERE error LIKE 'permanent:%';
UPDATE rte_steps SET failure_kind = 'retryable' WHERE error LIKE 'retryable:%';
UPDATE rte_steps SET failure_kind = 'unavailable' WHERE error LIKE 'unavailable:%';
UPDATE rte_transactions SET undo_cause = 'cancel' WHERE status = 'COMPENSATING' AND last_error LIKE 'cancelled by%';
