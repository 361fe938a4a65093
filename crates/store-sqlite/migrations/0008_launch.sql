-- Signed context launch (issue 7): the care home organisations a registered client (a care home
-- record system, in `oauth_clients`) may launch users into, and the roles it may assert there.
-- One row per client and organisation; `roles` is a space-separated list of role names.
CREATE TABLE launch_registrations (
    client_id       TEXT NOT NULL REFERENCES oauth_clients (client_id),
    organisation_id TEXT NOT NULL,
    roles           TEXT NOT NULL,
    PRIMARY KEY (client_id, organisation_id)
);
