-- Accounts, systems, update requests, policy versions and the control log.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    email TEXT,
    position TEXT,
    roles TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE systems (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES accounts (id),
    deputy_id INTEGER REFERENCES accounts (id),
    stakeholders TEXT NOT NULL,
    notify TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    documentation_revision INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE documentation_revisions (
    system_id INTEGER NOT NULL REFERENCES systems (id),
    number INTEGER NOT NULL,
    summary TEXT NOT NULL,
    request_id INTEGER,
    recorded_by INTEGER NOT NULL REFERENCES accounts (id),
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (system_id, number)
);

CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id INTEGER NOT NULL REFERENCES systems (id),
    state TEXT NOT NULL,
    paused INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX requests_by_system ON requests (system_id);

CREATE TABLE policy_versions (
    number INTEGER PRIMARY KEY,
    effective INTEGER NOT NULL,
    author_name TEXT NOT NULL,
    author_position TEXT NOT NULL,
    reason TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE control_log (
    seq INTEGER PRIMARY KEY,
    format INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id INTEGER,
    system_id INTEGER,
    state_before TEXT,
    state_after TEXT,
    details TEXT NOT NULL,
    policy_version INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX control_log_by_request ON control_log (request_id, seq);

CREATE TRIGGER control_log_no_update BEFORE UPDATE ON control_log
BEGIN
    SELECT RAISE(ABORT, 'the control log is append-only');
END;

CREATE TRIGGER control_log_no_delete BEFORE DELETE ON control_log
BEGIN
    SELECT RAISE(ABORT, 'the control log is append-only');
END;

-- The newest entry, locked by every append so that appends are serialised.
CREATE TABLE log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
