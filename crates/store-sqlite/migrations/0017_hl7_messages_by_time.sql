-- How fresh each feed is (`ingest::feeds`, shown on every record page) is the newest message
-- of each sending system: `MAX(received_at)` for one `sender`. The log's key
-- `(sender, control_id)` finds a sender's rows but not its newest without reading them all;
-- this index answers it from one end of one range, however long the log grows.
CREATE INDEX hl7_messages_sender_received ON hl7_messages (sender, received_at);
