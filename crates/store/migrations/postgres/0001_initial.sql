-- Accounts, systems, update requests, policy versions and the control log.
CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    email TEXT,
    position TEXT,
    roles TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE systems (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id BIGINT NOT NULL REFERENCES accounts (id),
    deputy_id BIGINT REFERENCES accounts (id),
    stakeholders TEXT NOT NULL,
    notify TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    documentation_revision BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE documentation_revisions (
    system_id BIGINT NOT NULL REFERENCES systems (id),
    number BIGINT NOT NULL,
    summary TEXT NOT NULL,
    request_id BIGINT,
    recorded_by BIGINT NOT NULL REFERENCES accounts (id),
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (system_id, number)
);

CREATE TABLE requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system_id BIGINT NOT NULL REFERENCES systems (id),
    state TEXT NOT NULL,
    paused BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX requests_by_system ON requests (system_id);

CREATE TABLE policy_versions (
    number BIGINT PRIMARY KEY,
    effective BIGINT NOT NULL,
    author_name TEXT NOT NULL,
    author_position TEXT NOT NULL,
    reason TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE control_log (
    seq BIGINT PRIMARY KEY,
    format BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id BIGINT,
    system_id BIGINT,
    state_before TEXT,
    state_after TEXT,
    details TEXT NOT NULL,
    policy_version BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX control_log_by_request ON control_log (request_id, seq);

CREATE FUNCTION control_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the control log is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER control_log_no_change BEFORE UPDATE OR DELETE ON control_log
FOR EACH ROW EXECUTE FUNCTION control_log_append_only();

CREATE TRIGGER control_log_no_truncate BEFORE TRUNCATE ON control_log
FOR EACH STATEMENT EXECUTE FUNCTION control_log_append_only();

-- The newest entry, locked by every append so that appends are serialised.
CREATE TABLE log_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
