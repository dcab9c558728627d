-- A saga's row is rewritten at every step. Stuck sagas are found through the status index
-- (few sagas are under way at once), so updated_at needs no index of its own, and a step
-- that changes no indexed column writes no index entry.
DROP INDEX rte_tx_status_updated ON rte_transactions;
