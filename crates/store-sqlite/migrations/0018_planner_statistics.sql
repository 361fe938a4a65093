-- The query planner's statistics for the record's tables, so that it chooses the right index
-- from the first query, in a store that has never been analysed (which is every store: nothing
-- runs ANALYZE).
--
-- Without statistics SQLite counts only the equality terms an index matches. A search with
-- two criteria (the residents list: `Observation?patient=…&category=laboratory&date=ge…`)
-- starts from one and tests each candidate against the other with a correlated probe
-- `search_token WHERE resource_type = ? AND id = ? AND param = ? AND code IN …`. Both
-- `search_token_owner (resource_type, id, param)` and `search_token_value (resource_type,
-- param, code, …)` match three terms; the value index covers the probe, so it won — and read
-- every laboratory result of every person for each candidate. For one person with 1,900
-- results that was 110 ms instead of 9 ms, and it grows with the whole store.
--
-- The figures are `ANALYZE` of a synthetic London of 400 people (31,470 resources; `carerecord
-- generate --patients 400`, then `import`). What the planner needs from them is the shape,
-- which does not change with size: an owner has a handful of rows per parameter, a value is
-- shared by many owners. Running ANALYZE on a real store replaces them with its own.
ANALYZE sqlite_schema;
DELETE FROM sqlite_stat1 WHERE tbl IN (
    'resources', 'care_relationships', 'search_string', 'search_token', 'search_date',
    'search_reference', 'search_quantity', 'search_uri', 'search_number'
);
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('resources', 'sqlite_autoindex_resources_1', '31470 1852 1'),
    ('resources', 'resources_patient', '31470 79 7 1'),
    ('resources', 'resources_updated', '31470 1852 1'),
    ('care_relationships', 'care_relationships_patient', '2917 8 3 3 1'),
    ('care_relationships', 'care_relationships_org', '2917 109 3'),
    ('care_relationships', 'care_relationships_owner', '2917 973 1'),
    ('search_string', 'search_string_owner', '8980 1796 4 2'),
    ('search_string', 'search_string_value', '8980 1796 449 4'),
    ('search_token', 'search_token_owner', '235500 13853 8 2'),
    ('search_token', 'search_token_value', '235500 13853 2944 128 128 1'),
    ('search_date', 'search_date_owner', '68847 4050 3 1'),
    ('search_date', 'search_date_value', '68847 4050 1913 2 2'),
    ('search_date', 'search_date_patient', '68847 172 15 7 2'),
    ('search_reference', 'search_reference_owner', '122901 7230 4 2'),
    ('search_reference', 'search_reference_target', '122901 5 5 3 3 1'),
    ('search_reference', 'search_reference_identifier', '122901 7230 2927 2927'),
    ('search_quantity', 'search_quantity_owner', '13583 13583 1 1'),
    ('search_quantity', 'search_quantity_value', '13583 13583 13583 29'),
    ('search_uri', 'search_uri_owner', '31470 1852 1 1'),
    ('search_uri', 'search_uri_value', '31470 1852 1852 190 1'),
    -- No numbers in the sample: an owner's few rows, a value's many (as for quantities).
    ('search_number', 'search_number_owner', '10000 2000 2 1'),
    ('search_number', 'search_number_value', '10000 2000 500 20');
-- Loads the figures into this connection's planner (others load them with the schema).
ANALYZE sqlite_schema;
