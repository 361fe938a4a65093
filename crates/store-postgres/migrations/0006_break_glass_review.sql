-- The privacy officers' review of break-glass grants (0005 made the reviewer, time and note
-- columns): the outcome they chose. A grant is open while `reviewed_at` is NULL.
-- The same logical schema as the SQLite backend's 0006_break_glass_review.sql.
ALTER TABLE break_glass ADD COLUMN review_outcome TEXT COLLATE "C";
