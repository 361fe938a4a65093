-- A search tests most criteria as a correlated EXISTS on one resource's index rows. Those
-- lookups must seek by (resource_type, id, param), not walk every row of a parameter: the
-- owner indexes gain `param`, and the equality-only value indexes gain a trailing `id` so a
-- lookup that uses them is a full-key seek as well.
DROP INDEX search_string_owner;
CREATE INDEX search_string_owner ON search_string (resource_type, id, param);
DROP INDEX search_token_owner;
CREATE INDEX search_token_owner ON search_token (resource_type, id, param);
DROP INDEX search_token_value;
CREATE INDEX search_token_value ON search_token (resource_type, param, code, system, id);
DROP INDEX search_date_owner;
CREATE INDEX search_date_owner ON search_date (resource_type, id, param);
DROP INDEX search_reference_owner;
CREATE INDEX search_reference_owner ON search_reference (resource_type, id, param);
DROP INDEX search_reference_target;
CREATE INDEX search_reference_target ON search_reference (target_id, target_type, param, resource_type, id);
DROP INDEX search_number_owner;
CREATE INDEX search_number_owner ON search_number (resource_type, id, param);
DROP INDEX search_quantity_owner;
CREATE INDEX search_quantity_owner ON search_quantity (resource_type, id, param);
DROP INDEX search_uri_owner;
CREATE INDEX search_uri_owner ON search_uri (resource_type, id, param);
DROP INDEX search_uri_value;
CREATE INDEX search_uri_value ON search_uri (resource_type, param, value, id);
