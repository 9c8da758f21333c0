-- Herald's first schema. Times are milliseconds since the Unix epoch (UTC); ids are UUIDv7
-- strings, which sort in creation order.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Users' personal namespaces and teams share one namespace of names.
CREATE TABLE entities (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'team')),
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    entity_id TEXT NOT NULL UNIQUE REFERENCES entities (id),
    is_org_admin INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Only the SHA-256 of a key is stored.
CREATE TABLE api_keys (
    key_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL
);

CREATE TABLE memberships (
    entity_id TEXT NOT NULL REFERENCES entities (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
    PRIMARY KEY (entity_id, user_id)
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL REFERENCES entities (id),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    state TEXT NOT NULL,
    exit_code INTEGER,
    config TEXT,
    summary TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    notes TEXT,
    group_name TEXT,
    job_type TEXT,
    host TEXT,
    history_line_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

-- History rows are upserted by line index, so the key is (run, line).
CREATE TABLE history (
    run_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    step INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, line)
) WITHOUT ROWID;

CREATE TABLE run_files (
    run_id TEXT NOT NULL REFERENCES runs (id),
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);

-- The evaluator reads events in seq order; AUTOINCREMENT keeps seq from being reused.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL,
    run_id TEXT,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE evaluator_cursor (
    shard INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
INSERT INTO evaluator_cursor (shard, last_seq) VALUES (0, 0);

CREATE TABLE secrets (
    id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL REFERENCES entities (id),
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL REFERENCES entities (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    access_token_secret_id TEXT REFERENCES secrets (id),
    signing_secret_id TEXT REFERENCES secrets (id),
    created_at INTEGER NOT NULL,
    UNIQUE (entity_id, name)
);

-- Deleted automations keep their row (deleted_at set) so that their executions stay listed.
CREATE TABLE automations (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    integration_id TEXT REFERENCES integrations (id),
    revision INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE UNIQUE INDEX automations_live_name ON automations (project_id, name) WHERE deleted_at IS NULL;
CREATE INDEX automations_live_event ON automations (project_id, event_type) WHERE deleted_at IS NULL;

CREATE TABLE automation_revisions (
    automation_id TEXT NOT NULL REFERENCES automations (id),
    revision INTEGER NOT NULL,
    spec TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (automation_id, revision)
);

CREATE TABLE metric_states (
    automation_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (automation_id, run_id)
) WITHOUT ROWID;

-- While an execution is delivering, next_attempt_at holds the end of its claim's lease,
-- so one index finds both due and abandoned executions.
CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    automation_id TEXT NOT NULL REFERENCES automations (id),
    automation_name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    event_line INTEGER,
    event_type TEXT NOT NULL,
    run_id TEXT,
    state TEXT NOT NULL,
    action_type TEXT NOT NULL,
    integration_id TEXT,
    request_body TEXT,
    event_data TEXT NOT NULL,
    skip_reason TEXT,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    claim_token TEXT,
    last_status_code INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX executions_occurrence ON executions (automation_id, event_seq, IFNULL(event_line, -1));
CREATE INDEX executions_due ON executions (next_attempt_at) WHERE state IN ('pending', 'delivering');
CREATE INDEX executions_by_automation ON executions (automation_id, id);

CREATE TABLE attempts (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    number INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,
    response_body TEXT,
    error TEXT,
    succeeded INTEGER NOT NULL,
    PRIMARY KEY (execution_id, number)
);
