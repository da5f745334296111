//! The PostgreSQL schema as numbered migrations, the same tables and columns as the
//! SQLite one (`schema.rs`), so that one set of statements serves both. The version
//! lives in the `schema_version` table. Never edit a released migration: add the next.
//!
//! Differences from SQLite: times and ids are `BIGINT`; `metadata` is `json` (kept as
//! written, key order included; compared as `jsonb`); the triggers are PL/pgSQL, lock
//! the blocker row they read (so that an edge added while its blocker completes is
//! counted right under concurrency), and announce every change of a list with
//! `NOTIFY parallel_tasks, '<list name>'` — what `task-wait` and idle workers wake on.

/// Migration N (1-based) is `MIGRATIONS[N - 1]`.
pub const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite's migrations 1–3 hold (lists, tasks with keys, edges, pools),
    //    the triggers that keep `open_blockers` exact, and the change notifications.
    r#"
CREATE TABLE lists (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT   NOT NULL UNIQUE,
    last_id    BIGINT NOT NULL DEFAULT 0,   -- high-water mark: ids are never reused
    created_at BIGINT NOT NULL              -- ms since the Unix epoch (server clock)
);

CREATE TABLE tasks (
    list_id       BIGINT NOT NULL REFERENCES lists(id),
    id            BIGINT NOT NULL,           -- per list: 1, 2, 3 ...
    key           TEXT,
    subject       TEXT   NOT NULL,
    description   TEXT   NOT NULL DEFAULT '',
    active_form   TEXT,
    status        TEXT   NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending','in_progress','completed','failed','cancelled')),
    owner         TEXT,
    priority      BIGINT NOT NULL DEFAULT 0,
    metadata      JSON   NOT NULL DEFAULT '{}',
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL DEFAULT 1,
    open_blockers BIGINT NOT NULL DEFAULT 0,     -- maintained by the triggers below
    result        TEXT,
    log           TEXT,
    exit_code     BIGINT,
    claim_token   BIGINT,
    lease_until   BIGINT,
    holder_host   TEXT,
    holder_pid    BIGINT,
    holder_start  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    PRIMARY KEY (list_id, id)
);
CREATE UNIQUE INDEX tasks_by_key ON tasks (list_id, key) WHERE key IS NOT NULL;
CREATE INDEX tasks_ready ON tasks (list_id, status, open_blockers, priority DESC, id);

CREATE TABLE edges (
    list_id BIGINT NOT NULL,
    blocker BIGINT NOT NULL,
    blocked BIGINT NOT NULL,
    PRIMARY KEY (list_id, blocker, blocked)
);
CREATE INDEX edges_by_blocked ON edges (list_id, blocked, blocker);

CREATE TABLE pools (
    host       TEXT   NOT NULL,
    pid        BIGINT NOT NULL,
    started    BIGINT NOT NULL,
    list       TEXT   NOT NULL,
    options    TEXT   NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    PRIMARY KEY (host, pid, started)
);

CREATE FUNCTION tasks_edge_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Lock the blocker: a concurrent completion of it waits for us, or we see it.
    PERFORM 1 FROM tasks WHERE list_id = NEW.list_id AND id = NEW.blocker FOR SHARE;
    UPDATE tasks SET open_blockers = open_blockers + 1
     WHERE list_id = NEW.list_id AND id = NEW.blocked
       AND (SELECT status FROM tasks WHERE list_id = NEW.list_id AND id = NEW.blocker) <> 'completed';
    RETURN NULL;
END $$;
CREATE TRIGGER edge_added AFTER INSERT ON edges FOR EACH ROW EXECUTE FUNCTION tasks_edge_added();

CREATE FUNCTION tasks_edge_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM tasks WHERE list_id = OLD.list_id AND id = OLD.blocker FOR SHARE;
    UPDATE tasks SET open_blockers = open_blockers - 1
     WHERE list_id = OLD.list_id AND id = OLD.blocked
       AND (SELECT status FROM tasks WHERE list_id = OLD.list_id AND id = OLD.blocker) <> 'completed';
    RETURN NULL;
END $$;
CREATE TRIGGER edge_removed AFTER DELETE ON edges FOR EACH ROW EXECUTE FUNCTION tasks_edge_removed();

CREATE FUNCTION tasks_blocker_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks SET open_blockers = open_blockers + (CASE WHEN NEW.status = 'completed' THEN -1 ELSE 1 END)
     WHERE list_id = NEW.list_id
       AND id IN (SELECT blocked FROM edges WHERE list_id = NEW.list_id AND blocker = NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER blocker_status AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN ((OLD.status = 'completed') <> (NEW.status = 'completed'))
    EXECUTE FUNCTION tasks_blocker_status();

-- One notification per list and statement; PostgreSQL folds equal ones of a
-- transaction into one, delivered at commit.
CREATE FUNCTION tasks_notify_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('parallel_tasks', l.name)
       FROM lists l WHERE l.id IN (SELECT DISTINCT list_id FROM changed);
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_inserted AFTER INSERT ON tasks REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_notify_new();
CREATE TRIGGER tasks_updated AFTER UPDATE ON tasks REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_notify_new();
CREATE TRIGGER tasks_removed AFTER DELETE ON tasks REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_notify_new();
"#,
    // 2: task-sync's map between tasks and Claude Code's task files (SQLite's 4).
    r#"
CREATE TABLE sync_files (
    list_id BIGINT NOT NULL,
    task    BIGINT NOT NULL,
    file    BIGINT,
    state   TEXT,
    PRIMARY KEY (list_id, task),
    UNIQUE (list_id, file)
);
"#,
    // 3: write scopes (SQLite's 5: the same tables, the triggers in PL/pgSQL).
    r#"
CREATE TABLE scope_keys (
    list_id BIGINT NOT NULL,
    task    BIGINT NOT NULL,
    key     TEXT   NOT NULL,
    exact   BIGINT NOT NULL,
    PRIMARY KEY (list_id, task, key, exact)
);
CREATE TABLE held_scopes (
    list_id BIGINT NOT NULL,
    task    BIGINT NOT NULL,
    key     TEXT   NOT NULL,
    exact   BIGINT NOT NULL,
    PRIMARY KEY (list_id, key, exact, task)
);

CREATE FUNCTION tasks_scopes_held() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'in_progress' THEN
        INSERT INTO held_scopes (list_id, task, key, exact)
            SELECT list_id, task, key, exact FROM scope_keys WHERE list_id = NEW.list_id AND task = NEW.id
            ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM held_scopes WHERE list_id = NEW.list_id AND task = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER scopes_held AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN ((OLD.status = 'in_progress') <> (NEW.status = 'in_progress'))
    EXECUTE FUNCTION tasks_scopes_held();

CREATE FUNCTION tasks_scopes_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM scope_keys WHERE list_id = OLD.list_id AND task = OLD.id;
    DELETE FROM held_scopes WHERE list_id = OLD.list_id AND task = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER scopes_deleted BEFORE DELETE ON tasks FOR EACH ROW
    EXECUTE FUNCTION tasks_scopes_deleted();
"#,
    // 4: verified results and task history (SQLite's 6).
    r#"
ALTER TABLE tasks ADD COLUMN verify TEXT;
ALTER TABLE tasks ADD COLUMN feedback TEXT;
CREATE TABLE events (
    id      BIGSERIAL PRIMARY KEY,
    list_id BIGINT NOT NULL,
    task    BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    actor   TEXT,
    detail  TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_task ON events (list_id, task, id);
CREATE INDEX tasks_leases ON tasks (list_id, lease_until) WHERE status = 'in_progress';

CREATE FUNCTION tasks_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM events WHERE list_id = OLD.list_id AND task = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER events_deleted BEFORE DELETE ON tasks FOR EACH ROW
    EXECUTE FUNCTION tasks_events_deleted();
"#,
    // 5: critical-path claims and live output (SQLite's 7).
    r#"
ALTER TABLE tasks ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN output_dir TEXT;
CREATE TABLE depth_dirty (list_id BIGINT NOT NULL, task BIGINT NOT NULL);
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (list_id, status, open_blockers, priority DESC, depth DESC, id);

CREATE FUNCTION tasks_depth_edge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO depth_dirty VALUES (NEW.list_id, NEW.blocker);
    ELSE
        INSERT INTO depth_dirty VALUES (OLD.list_id, OLD.blocker);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER depth_edge AFTER INSERT OR DELETE ON edges FOR EACH ROW
    EXECUTE FUNCTION tasks_depth_edge();

CREATE FUNCTION tasks_depth_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO depth_dirty VALUES (NEW.list_id, NEW.id);
    INSERT INTO depth_dirty SELECT list_id, blocker FROM edges WHERE list_id = NEW.list_id AND blocked = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER depth_status AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN ((OLD.status IN ('pending','in_progress')) <> (NEW.status IN ('pending','in_progress')))
    EXECUTE FUNCTION tasks_depth_status();

WITH RECURSIVE chain(list_id, id, d) AS (
    SELECT list_id, id, 0 FROM tasks WHERE status IN ('pending','in_progress')
    UNION
    SELECT e.list_id, e.blocker, c.d + 1 FROM chain c
      JOIN edges e ON e.list_id = c.list_id AND e.blocked = c.id
      JOIN tasks b ON b.list_id = e.list_id AND b.id = e.blocker AND b.status IN ('pending','in_progress')),
deepest AS (SELECT list_id, id, MAX(d) AS d FROM chain GROUP BY list_id, id)
UPDATE tasks t SET depth = deepest.d FROM deepest WHERE t.list_id = deepest.list_id AND t.id = deepest.id;
"#,
    // 6: the list's events by id, for `task-list --watch --format jsonl` (SQLite's 8).
    r#"
CREATE INDEX events_by_list ON events (list_id, id);
"#,
    // 7: what Claude Code workers cost (SQLite's 9).
    r#"
ALTER TABLE tasks ADD COLUMN cost_micros BIGINT;
CREATE INDEX tasks_cost ON tasks (list_id) WHERE cost_micros IS NOT NULL;
"#,
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
