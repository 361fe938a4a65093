-- A CodeableConcept's `text` that one of the same parameter's codings already displays
-- (normalised alike) was written as a row of its own; `:text` matches the coding's row the
-- same, and nothing else reads a row without system and code. New versions no longer write
-- them (`prepare::slim`); these are the old ones.
DELETE FROM search_token
WHERE system IS NULL AND code IS NULL AND text IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM search_token o
    WHERE o.resource_type = search_token.resource_type
      AND o.id = search_token.id
      AND o.param = search_token.param
      AND o.text = search_token.text
      AND (o.system IS NOT NULL OR o.code IS NOT NULL)
  );
