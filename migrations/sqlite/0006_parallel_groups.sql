-- Parallel groups: a step may be a branch of a group of steps that run at once (the group
-- is named by its first step's index, with how many branches may run at once), and
-- compensation follows the order in which steps completed, kept per step.
ALTER TABLE rte_steps ADD COLUMN parallel_group INTEGER;
ALTER TABLE rte_steps ADD COLUMN parallel_limit INTEGER;
ALTER TABLE rte_steps ADD COLUMN completed_order INTEGER;

-- Steps stored before ran one after another: they completed in index order.
UPDATE rte_steps SET completed_order = step_index + 1
    WHERE status IN ('COMPLETED', 'CONFIRMED', 'COMPENSATING', 'COMPENSATED', 'COMPENSATION_FAILED');
