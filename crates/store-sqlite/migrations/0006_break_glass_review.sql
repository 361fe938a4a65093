-- The privacy officers' review of break-glass grants (0005 made the reviewer, time and note
-- columns): the outcome they chose. A grant is open while `reviewed_at` is NULL.
ALTER TABLE break_glass ADD COLUMN review_outcome TEXT;
