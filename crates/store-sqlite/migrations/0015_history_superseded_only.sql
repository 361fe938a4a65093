-- `resource_history` keeps only superseded versions; the current version of each resource
-- lives once, in `resources` (readers of every version take the union of both tables). Before
-- this migration every write stored its body twice: drop the copies of current versions.
DELETE FROM resource_history
WHERE EXISTS (
    SELECT 1 FROM resources r
    WHERE r.resource_type = resource_history.resource_type
      AND r.id = resource_history.id
      AND r.version_id = resource_history.version_id
);
