-- Endpoints, their enrolment tokens, inventories and jobs. Secrets are stored only as hashes.
CREATE TABLE enrolment_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    system_id INTEGER NOT NULL REFERENCES systems (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    created_by INTEGER NOT NULL REFERENCES accounts (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    endpoint_id INTEGER
);

CREATE TABLE endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id INTEGER NOT NULL REFERENCES systems (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    hostname TEXT NOT NULL,
    machine_id TEXT,
    credential_hash TEXT NOT NULL UNIQUE,
    enrolled_at INTEGER NOT NULL,
    last_seen_at INTEGER,
    clock_offset_ms INTEGER,
    inventory_hash TEXT NOT NULL DEFAULT '',
    inventory TEXT,
    inventory_at INTEGER,
    revoked_at INTEGER,
    next_job_sequence INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX endpoints_by_system ON endpoints (system_id, environment);

-- Each received inventory as its difference from the one before.
CREATE TABLE inventory_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id INTEGER NOT NULL REFERENCES endpoints (id),
    received_at INTEGER NOT NULL,
    hash TEXT NOT NULL,
    delta TEXT NOT NULL
);
CREATE INDEX inventory_changes_by_endpoint ON inventory_changes (endpoint_id, id);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id INTEGER NOT NULL REFERENCES endpoints (id),
    request_id INTEGER NOT NULL REFERENCES requests (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    round INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    payload TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    outcome TEXT,
    report TEXT,
    reported_at INTEGER,
    UNIQUE (endpoint_id, sequence)
);
CREATE INDEX jobs_by_request ON jobs (request_id, environment, round);
CREATE INDEX jobs_open_by_endpoint ON jobs (endpoint_id, outcome);

-- How each environment of a system is worked on (the health checks run after
-- an update, rollback, reboot and recovery rules), as the server's JSON.
CREATE TABLE environment_settings (
    system_id INTEGER NOT NULL REFERENCES systems (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    settings TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (system_id, environment)
);
