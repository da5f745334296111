//! The SQLite schema as numbered migrations; the version lives in `PRAGMA user_version`.
//! Never edit a released migration: add the next one.

/// Migration N (1-based) is `MIGRATIONS[N - 1]`.
pub const MIGRATIONS: &[&str] = &[
    // 1: lists, tasks, dependency edges, and the triggers that keep
    //    `tasks.open_blockers` (how many blockers are not completed) exact, so that
    //    "ready" is an indexed column instead of a join.
    r#"
CREATE TABLE lists (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    last_id    INTEGER NOT NULL DEFAULT 0,   -- high-water mark: ids are never reused
    created_at INTEGER NOT NULL              -- ms since the Unix epoch
);

CREATE TABLE tasks (
    list_id       INTEGER NOT NULL REFERENCES lists(id),
    id            INTEGER NOT NULL,          -- per list: 1, 2, 3 ...
    subject       TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    active_form   TEXT,
    status        TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending','in_progress','completed','failed','cancelled')),
    owner         TEXT,
    priority      INTEGER NOT NULL DEFAULT 0,
    metadata      TEXT    NOT NULL DEFAULT '{}',   -- a JSON object
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 1,
    open_blockers INTEGER NOT NULL DEFAULT 0,      -- maintained by the triggers below
    result        TEXT,
    log           TEXT,
    exit_code     INTEGER,
    claim_token   INTEGER,                   -- new random value at every claim
    lease_until   INTEGER,                   -- ms; NULL: the claim never expires
    holder_host   TEXT,                      -- the claiming process, when known
    holder_pid    INTEGER,
    holder_start  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    UNIQUE (list_id, id)
);

-- edge: `blocked` waits for `blocker` (blocker.blocks / blocked.blockedBy)
CREATE TABLE edges (
    list_id INTEGER NOT NULL,
    blocker INTEGER NOT NULL,
    blocked INTEGER NOT NULL,
    PRIMARY KEY (list_id, blocker, blocked)
) WITHOUT ROWID;
CREATE INDEX edges_by_blocked ON edges (list_id, blocked, blocker);

-- claim: the first ready task by priority then id, whatever the number of finished
-- tasks; expired leases and --limit (few rows are in_progress); filters and counts.
CREATE INDEX tasks_ready ON tasks (list_id, status, open_blockers, priority DESC, id);

CREATE TRIGGER edge_added AFTER INSERT ON edges BEGIN
    UPDATE tasks SET open_blockers = open_blockers + 1
     WHERE list_id = NEW.list_id AND id = NEW.blocked
       AND (SELECT status FROM tasks WHERE list_id = NEW.list_id AND id = NEW.blocker) <> 'completed';
END;

CREATE TRIGGER edge_removed AFTER DELETE ON edges BEGIN
    UPDATE tasks SET open_blockers = open_blockers - 1
     WHERE list_id = OLD.list_id AND id = OLD.blocked
       AND (SELECT status FROM tasks WHERE list_id = OLD.list_id AND id = OLD.blocker) <> 'completed';
END;

CREATE TRIGGER blocker_status AFTER UPDATE OF status ON tasks
WHEN (OLD.status = 'completed') <> (NEW.status = 'completed') BEGIN
    UPDATE tasks SET open_blockers = open_blockers + (CASE WHEN NEW.status = 'completed' THEN -1 ELSE 1 END)
     WHERE list_id = NEW.list_id
       AND id IN (SELECT blocked FROM edges WHERE list_id = NEW.list_id AND blocker = NEW.id);
END;

-- a deleted task takes its edges along (while its status can still be read)
CREATE TRIGGER task_deleted BEFORE DELETE ON tasks BEGIN
    DELETE FROM edges WHERE list_id = OLD.list_id AND blocker = OLD.id;
    DELETE FROM edges WHERE list_id = OLD.list_id AND blocked = OLD.id;
END;
"#,
    // 2: every running worker-spawn (a pool), so that `task-list --workers` shows them and
    //    `worker-spawn --stop` finds them. A pool removes its row when it ends; one killed
    //    is recognised as dead as claim holders are (host, pid, process start time).
    r#"
CREATE TABLE pools (
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    started    INTEGER NOT NULL,   -- process start time, clock ticks since boot
    list       TEXT    NOT NULL,   -- the list's name
    options    TEXT    NOT NULL,   -- a JSON object: jobs, command, log, ...
    started_at INTEGER NOT NULL,   -- ms since the Unix epoch
    seen_at    INTEGER NOT NULL,   -- ms: its last sign of life
    PRIMARY KEY (host, pid, started)
);
"#,
    // 3: task keys (`task-create --key`): a name unique within the list, so that a plan
    //    run twice finds its tasks instead of duplicating them. Tasks without a key are
    //    not in the index.
    r#"
ALTER TABLE tasks ADD COLUMN key TEXT;
CREATE UNIQUE INDEX tasks_by_key ON tasks (list_id, key) WHERE key IS NOT NULL;
"#,
    // 4: task-sync's map between tasks and Claude Code's task files: per task, the file
    //    that shows it (NULL once that file is gone for good) and the file's fields as
    //    last synced (NULL until the first write of the file is confirmed). No foreign
    //    key: a row outlives its deleted task so that task-sync can delete its file
    //    instead of importing it again; task ids are never reused.
    r#"
CREATE TABLE sync_files (
    list_id INTEGER NOT NULL,
    task    INTEGER NOT NULL,
    file    INTEGER,
    state   TEXT,
    PRIMARY KEY (list_id, task),
    UNIQUE (list_id, file)
);
"#,
    // 5: write scopes. `scope_keys` indexes every task's scopes: each scope under itself
    //    (exact = 1) and under every folder above it, up to `.` (exact = 0); two scopes
    //    conflict when they share a key that is exact for one of them. `held_scopes` is
    //    the same rows for the tasks in progress only, kept by triggers, so that a claim
    //    checks its candidate against what is held with index look-ups, however many
    //    tasks the list has.
    r#"
CREATE TABLE scope_keys (
    list_id INTEGER NOT NULL,
    task    INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    exact   INTEGER NOT NULL,
    PRIMARY KEY (list_id, task, key, exact)
) WITHOUT ROWID;
CREATE TABLE held_scopes (
    list_id INTEGER NOT NULL,
    task    INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    exact   INTEGER NOT NULL,
    PRIMARY KEY (list_id, key, exact, task)
) WITHOUT ROWID;

CREATE TRIGGER scopes_held AFTER UPDATE OF status ON tasks
WHEN NEW.status = 'in_progress' AND OLD.status <> 'in_progress' BEGIN
    INSERT OR IGNORE INTO held_scopes (list_id, task, key, exact)
        SELECT list_id, task, key, exact FROM scope_keys WHERE list_id = NEW.list_id AND task = NEW.id;
END;
CREATE TRIGGER scopes_freed AFTER UPDATE OF status ON tasks
WHEN OLD.status = 'in_progress' AND NEW.status <> 'in_progress' BEGIN
    DELETE FROM held_scopes WHERE list_id = NEW.list_id AND task = NEW.id;
END;
CREATE TRIGGER scopes_deleted BEFORE DELETE ON tasks BEGIN
    DELETE FROM scope_keys WHERE list_id = OLD.list_id AND task = OLD.id;
    DELETE FROM held_scopes WHERE list_id = OLD.list_id AND task = OLD.id;
END;
"#,
    // 6: verified results and task history. `verify` is a task's own check, `feedback`
    //    what its last failed check printed (handed to the next attempt). `events` holds
    //    every change of a task, in order; they go only with their task. The partial
    //    index finds the claims whose lease ran out without reading every task in
    //    progress, so that a claim costs the same with 10 000 of them as with none.
    r#"
ALTER TABLE tasks ADD COLUMN verify TEXT;
ALTER TABLE tasks ADD COLUMN feedback TEXT;
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL,
    task    INTEGER NOT NULL,
    at      INTEGER NOT NULL,            -- ms since the Unix epoch
    kind    TEXT    NOT NULL,            -- created, claimed, finished, ...
    actor   TEXT,                        -- who: an owner, a user, a tool
    detail  TEXT    NOT NULL DEFAULT '{}' -- a JSON object
);
CREATE INDEX events_by_task ON events (list_id, task, id);
CREATE INDEX tasks_leases ON tasks (list_id, lease_until) WHERE status = 'in_progress';
CREATE TRIGGER events_deleted BEFORE DELETE ON tasks BEGIN
    DELETE FROM events WHERE list_id = OLD.list_id AND task = OLD.id;
END;
"#,
    // 7: critical-path claims and live output. `depth` is the number of open tasks on
    //    the longest chain of open tasks that waits on a task (0 for a closed one); the
    //    claim orders by it after priority, through the ready index. The triggers only
    //    note in `depth_dirty` which tasks may have a new depth (an edge's blocker, a
    //    task opened or closed and its blockers); the store recomputes those, and their
    //    blockers while the value changes, before the transaction commits. `output_dir`
    //    is where the claiming worker-spawn writes the attempt's output files.
    r#"
ALTER TABLE tasks ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN output_dir TEXT;
CREATE TABLE depth_dirty (list_id INTEGER NOT NULL, task INTEGER NOT NULL);
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (list_id, status, open_blockers, priority DESC, depth DESC, id);

CREATE TRIGGER depth_edge_added AFTER INSERT ON edges BEGIN
    INSERT INTO depth_dirty VALUES (NEW.list_id, NEW.blocker);
END;
CREATE TRIGGER depth_edge_removed AFTER DELETE ON edges BEGIN
    INSERT INTO depth_dirty VALUES (OLD.list_id, OLD.blocker);
END;
CREATE TRIGGER depth_status AFTER UPDATE OF status ON tasks
WHEN (OLD.status IN ('pending','in_progress')) <> (NEW.status IN ('pending','in_progress')) BEGIN
    INSERT INTO depth_dirty VALUES (NEW.list_id, NEW.id);
    INSERT INTO depth_dirty SELECT list_id, blocker FROM edges WHERE list_id = NEW.list_id AND blocked = NEW.id;
END;

-- The depths of the tasks already there, walked up from each open task (UNION: each
-- (task, length) pair once, however many paths lead to it).
CREATE TABLE depth_init (list_id INTEGER, id INTEGER, d INTEGER, PRIMARY KEY (list_id, id));
INSERT INTO depth_init
WITH RECURSIVE chain(list_id, id, d) AS (
    SELECT list_id, id, 0 FROM tasks WHERE status IN ('pending','in_progress')
    UNION
    SELECT e.list_id, e.blocker, c.d + 1 FROM chain c
      JOIN edges e ON e.list_id = c.list_id AND e.blocked = c.id
      JOIN tasks b ON b.list_id = e.list_id AND b.id = e.blocker AND b.status IN ('pending','in_progress'))
SELECT list_id, id, MAX(d) FROM chain GROUP BY list_id, id;
UPDATE tasks SET depth = (SELECT d FROM depth_init i WHERE i.list_id = tasks.list_id AND i.id = tasks.id)
 WHERE status IN ('pending','in_progress');
DROP TABLE depth_init;
"#,
    // 8: the list's events in commit order, for `task-list --watch --format jsonl`, which
    //    follows them so that every transition is streamed, however close together.
    r#"
CREATE INDEX events_by_list ON events (list_id, id);
"#,
    // 9: what Claude Code workers cost, in millionths of a dollar (whole numbers add up
    //    exactly), summed over a task's attempts; the list's sum is `worker-spawn
    //    --max-cost`'s budget, read through the partial index.
    r#"
ALTER TABLE tasks ADD COLUMN cost_micros INTEGER;
CREATE INDEX tasks_cost ON tasks (list_id) WHERE cost_micros IS NOT NULL;
"#,
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
