-- A saga's row is rewritten at every step. Stuck sagas are found through the status index
-- (few sagas are under way at once), so updated_at needs no index of its own, and a step
-- that changes no indexed column writes no index entry.
DROP INDEX rte_tx_status_updated;
-- Room on each page for a row's next version, so those writes stay on the page (HOT).
ALTER TABLE rte_transactions SET (fillfactor = 80);
ALTER TABLE rte_steps SET (fillfactor = 80);
