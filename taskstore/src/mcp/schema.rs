//! JSON Schemas the derive cannot give: a task as `task-list --format json` prints it
//! (built by `output::task_json`, not by a struct), and a batch record as `task-create
//! --from` reads it. Clients check results against these (the TypeScript SDK does), so a
//! field added to the task JSON without its schema here fails the MCP tests.

use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{json, Value};

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

/// One task, every field of `output::FIELDS`.
pub fn task_value() -> Value {
    let text = json!({ "type": "string" });
    let int = json!({ "type": "integer" });
    let ids = json!({ "type": "array", "items": { "type": "string" } });
    let time = json!({ "type": "string", "format": "date-time" });
    let properties = json!({
        "id": { "type": "string", "description": "The task's id in its list (a number, as a string)" },
        "list": text,
        "key": nullable("string"),
        "subject": text,
        "description": text,
        "activeForm": nullable("string"),
        "status": { "enum": ["pending", "in_progress", "completed", "failed", "cancelled"] },
        "owner": nullable("string"),
        "claimToken": { "type": ["string", "null"], "description": "While a claim holds the task: pass it as `token` to task_update" },
        "blockedBy": ids,
        "blocks": ids,
        "priority": int,
        "depth": int,
        "metadata": { "type": "object" },
        "scopes": ids,
        "verify": nullable("string"),
        "attempts": int,
        "maxAttempts": int,
        "ready": { "type": "boolean" },
        "result": nullable("string"),
        "log": nullable("string"),
        "logFile": {
            "type": ["object", "null"],
            "properties": { "out": text, "err": text },
            "required": ["out", "err"]
        },
        "exitCode": nullable("integer"),
        "feedback": nullable("string"),
        "createdAt": time,
        "updatedAt": time,
        "startedAt": { "type": ["string", "null"], "format": "date-time" },
        "finishedAt": { "type": ["string", "null"], "format": "date-time" },
    });
    json!({
        "type": "object",
        "properties": properties,
        "required": crate::output::FIELDS,
    })
}

pub fn task(_: &mut SchemaGenerator) -> Schema {
    Schema::try_from(task_value()).expect("an object")
}

pub fn tasks(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "array", "items": task_value() })
}

pub fn task_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [task_value(), { "type": "null" }],
        "description": "The claimed task, or null when nothing is claimable"
    })
}

/// Counts by status, as `task-list --count --format json` prints them.
pub fn counts(_: &mut SchemaGenerator) -> Schema {
    let n = json!({ "type": "integer", "minimum": 0 });
    json_schema!({
        "type": "object",
        "properties": {
            "pending": n, "in_progress": n, "completed": n, "failed": n, "cancelled": n, "total": n
        },
        "required": ["pending", "in_progress", "completed", "failed", "cancelled", "total"]
    })
}

/// The records of `task_create`, as `task-create --from` reads them.
pub fn new_tasks(_: &mut SchemaGenerator) -> Schema {
    let text = json!({ "type": "string" });
    let refs = json!({
        "type": "array",
        "items": { "type": ["integer", "string"] },
        "description": "Tasks this one waits for: ids of the list, or keys of the list or of this batch"
    });
    json_schema!({
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {
                "subject": text,
                "description": text,
                "key": { "type": "string", "description": "Unique in the list: a record whose key exists creates nothing and stands for that task" },
                "activeForm": text,
                "blockedBy": refs,
                "priority": { "type": "integer", "description": "Higher runs first" },
                "owner": text,
                "maxAttempts": { "type": "integer", "minimum": 1 },
                "metadata": { "type": "object" },
                "scopes": { "type": "array", "items": text, "description": "Write scopes (paths); overlapping tasks never run at once" },
                "verify": { "type": "string", "description": "A shell check run after the task's command succeeds" }
            },
            "required": ["subject"],
            "additionalProperties": false
        }
    })
}
