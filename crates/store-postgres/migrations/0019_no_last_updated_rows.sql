-- `_lastUpdated` is searched, sorted and tested for `:missing` on the resource row's own
-- `last_updated` column; its index rows were written with every version and never read.
-- New versions no longer write them (`prepare::slim`); these are the old ones.
DELETE FROM search_date WHERE param = '_lastUpdated';
