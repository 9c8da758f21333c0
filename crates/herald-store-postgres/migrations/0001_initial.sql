-- Herald's first PostgreSQL schema. It has the tables and columns of the SQLite schema, with
-- PostgreSQL types: ids are UUIDv7, times are milliseconds since the Unix epoch (UTC) as in
-- SQLite, so both backends compare and sort times the same way. JSON documents are TEXT
-- rather than JSONB because JSONB reorders object keys, and payload templates, configs and
-- history rows must come back exactly as they were written. Names use the "C" collation so
-- that lists sort by bytes, as SQLite's BINARY collation does, whatever the database's locale.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Users' personal namespaces and teams share one namespace of names.
CREATE TABLE entities (
    id UUID PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'team')),
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id UUID PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    entity_id UUID NOT NULL UNIQUE REFERENCES entities (id),
    is_org_admin BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

-- Only the SHA-256 of a key is stored.
CREATE TABLE api_keys (
    key_hash BYTEA PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    entity_id UUID NOT NULL REFERENCES entities (id),
    user_id UUID NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
    PRIMARY KEY (entity_id, user_id)
);

CREATE TABLE projects (
    id UUID PRIMARY KEY,
    entity_id UUID NOT NULL REFERENCES entities (id),
    name TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE runs (
    id UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects (id),
    name TEXT COLLATE "C" NOT NULL,
    display_name TEXT NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id),
    state TEXT NOT NULL,
    exit_code BIGINT,
    config TEXT,
    summary TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    notes TEXT,
    group_name TEXT,
    job_type TEXT,
    host TEXT,
    history_line_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- History rows are upserted by line index, so the key is (run, line). `data` is the row's
-- JSON text, stored verbatim.
CREATE TABLE history (
    run_id UUID NOT NULL,
    line BIGINT NOT NULL,
    step BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, line)
);

CREATE TABLE run_files (
    run_id UUID NOT NULL REFERENCES runs (id),
    name TEXT COLLATE "C" NOT NULL,
    digest TEXT NOT NULL,
    size BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);

-- `id` numbers events as they are inserted. Identity values are handed out before commit,
-- so they can become visible out of order. `seq` is the commit-order position that the
-- evaluator reads by: it stays NULL until an evaluation pass, holding the cursor's row lock,
-- numbers the committed events that have none (see the crate documentation).
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq BIGINT UNIQUE,
    kind TEXT NOT NULL,
    project_id UUID NOT NULL,
    run_id UUID,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;

CREATE TABLE evaluator_cursor (
    shard INTEGER PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
INSERT INTO evaluator_cursor (shard, last_seq) VALUES (0, 0);

CREATE TABLE secrets (
    id UUID PRIMARY KEY,
    entity_id UUID NOT NULL REFERENCES entities (id),
    name TEXT COLLATE "C" NOT NULL,
    sealed BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE integrations (
    id UUID PRIMARY KEY,
    entity_id UUID NOT NULL REFERENCES entities (id),
    name TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    access_token_secret_id UUID REFERENCES secrets (id),
    signing_secret_id UUID REFERENCES secrets (id),
    created_at BIGINT NOT NULL,
    UNIQUE (entity_id, name)
);

-- Deleted automations keep their row (deleted_at set) so that their executions stay listed.
CREATE TABLE automations (
    id UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects (id),
    name TEXT COLLATE "C" NOT NULL,
    event_type TEXT NOT NULL,
    integration_id UUID REFERENCES integrations (id),
    revision BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_by UUID NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX automations_live_name ON automations (project_id, name) WHERE deleted_at IS NULL;
CREATE INDEX automations_live_event ON automations (project_id, event_type) WHERE deleted_at IS NULL;

CREATE TABLE automation_revisions (
    automation_id UUID NOT NULL REFERENCES automations (id),
    revision BIGINT NOT NULL,
    spec TEXT NOT NULL,
    created_by UUID NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (automation_id, revision)
);

CREATE TABLE metric_states (
    automation_id UUID NOT NULL,
    run_id UUID NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (automation_id, run_id)
);

-- While an execution is delivering, next_attempt_at holds the end of its claim's lease,
-- so one index finds both due and abandoned executions.
CREATE TABLE executions (
    id UUID PRIMARY KEY,
    automation_id UUID NOT NULL REFERENCES automations (id),
    automation_name TEXT NOT NULL,
    revision BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    event_line BIGINT,
    event_type TEXT NOT NULL,
    run_id UUID,
    state TEXT NOT NULL,
    action_type TEXT NOT NULL,
    integration_id UUID,
    request_body TEXT,
    event_data TEXT NOT NULL,
    skip_reason TEXT,
    attempt_count BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    claim_token TEXT,
    last_status_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX executions_occurrence ON executions (automation_id, event_seq, COALESCE(event_line, -1));
CREATE INDEX executions_due ON executions (next_attempt_at) WHERE state IN ('pending', 'delivering');
CREATE INDEX executions_by_automation ON executions (automation_id, id);

CREATE TABLE attempts (
    execution_id UUID NOT NULL REFERENCES executions (id),
    number BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code BIGINT,
    response_body TEXT,
    error TEXT,
    succeeded BOOLEAN NOT NULL,
    PRIMARY KEY (execution_id, number)
);
