-- Endpoints, their enrolment tokens, inventories and jobs. Secrets are stored only as hashes.
CREATE TABLE enrolment_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    system_id BIGINT NOT NULL REFERENCES systems (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    created_by BIGINT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    endpoint_id BIGINT
);

CREATE TABLE endpoints (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system_id BIGINT NOT NULL REFERENCES systems (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    hostname TEXT NOT NULL,
    machine_id TEXT,
    credential_hash TEXT NOT NULL UNIQUE,
    enrolled_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    clock_offset_ms BIGINT,
    inventory_hash TEXT NOT NULL DEFAULT '',
    inventory TEXT,
    inventory_at BIGINT,
    revoked_at BIGINT,
    next_job_sequence BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX endpoints_by_system ON endpoints (system_id, environment);

-- Each received inventory as its difference from the one before.
CREATE TABLE inventory_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id BIGINT NOT NULL REFERENCES endpoints (id),
    received_at BIGINT NOT NULL,
    hash TEXT NOT NULL,
    delta TEXT NOT NULL
);
CREATE INDEX inventory_changes_by_endpoint ON inventory_changes (endpoint_id, id);

CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id BIGINT NOT NULL REFERENCES endpoints (id),
    request_id BIGINT NOT NULL REFERENCES requests (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    round BIGINT NOT NULL,
    sequence BIGINT NOT NULL,
    payload TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    outcome TEXT,
    report TEXT,
    reported_at BIGINT,
    UNIQUE (endpoint_id, sequence)
);
CREATE INDEX jobs_by_request ON jobs (request_id, environment, round);
CREATE INDEX jobs_open_by_endpoint ON jobs (endpoint_id, outcome);

-- How each environment of a system is worked on (the health checks run after
-- an update, rollback, reboot and recovery rules), as the server's JSON.
CREATE TABLE environment_settings (
    system_id BIGINT NOT NULL REFERENCES systems (id),
    environment TEXT NOT NULL CHECK (environment IN ('test', 'prod')),
    settings TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (system_id, environment)
);
