//! The tools as MCP lists them: name, description, input and output schema. Each one
//! hands its parameters to `ops` on a blocking thread.

// rmcp takes a failed call's result by value, as `Err(CallToolResult)`.
#![allow(clippy::result_large_err)]

use super::ops;
use super::params::*;
use super::Tasks;
use crate::store::Access;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, Json, RoleServer};

type Answer<T> = Result<Json<T>, CallToolResult>;

/// A tool's input schema, from its parameters' type.
fn input<T: schemars::JsonSchema + 'static>() -> std::sync::Arc<JsonObject> {
    rmcp::handler::server::common::schema_for_type::<T>()
}

/// A tool's output schema, from its result's type.
fn output<T: schemars::JsonSchema + 'static>() -> std::sync::Arc<JsonObject> {
    rmcp::handler::server::common::schema_for_output::<T>()
}

/// The call's arguments as the tool's parameters. Arguments that do not fit (a wrong
/// type, a missing or unknown field) are the caller's mistake, answered like any other
/// bad input: a usage error (code 2) the model can read and correct.
fn parse<T: serde::de::DeserializeOwned>(args: JsonObject) -> Result<T, CallToolResult> {
    serde_json::from_value(serde_json::Value::Object(args))
        .map_err(|e| super::failure(crate::Error::usage(format!("invalid arguments: {e}"))))
}

#[tool_router(router = tool_router, vis = "pub(super)")]
impl Tasks {
    /// Create tasks, with dependencies among them, in one transaction (all or none). A
    /// record with a `key` the list already has creates nothing and stands for that task,
    /// so a retried call is safe. Returns the tasks in record order.
    #[tool(input_schema = input::<CreateIn>(), output_schema = output::<TasksOut>(), annotations(idempotent_hint = false, destructive_hint = false))]
    async fn task_create(&self, args: JsonObject) -> Answer<TasksOut> {
        let p: CreateIn = parse(args)?;
        self.call(Access::Create, move |s, l| ops::create(s, l, p))
            .await
            .map(Json)
    }

    /// List tasks (lowest ids first, at most `limit`, 200 by default) and the counts by
    /// status of every task the filters match.
    #[tool(input_schema = input::<ListIn>(), output_schema = output::<ListOut>(), annotations(read_only_hint = true))]
    async fn task_list(&self, args: JsonObject) -> Answer<ListOut> {
        let p: ListIn = parse(args)?;
        self.call(Access::Write, move |s, l| ops::list_tasks(s, l, p))
            .await
            .map(Json)
    }

    /// One task in full (result, log, blockers), with its history if asked.
    #[tool(input_schema = input::<GetIn>(), output_schema = output::<GetOut>(), annotations(read_only_hint = true))]
    async fn task_get(&self, args: JsonObject) -> Answer<GetOut> {
        let p: GetIn = parse(args)?;
        self.call(Access::Write, move |s, l| ops::get(s, l, p))
            .await
            .map(Json)
    }

    /// Change tasks, all or none: status, result, fields, metadata, dependencies, a note.
    /// A worker finishing its claim passes the claim's `token` (its claimToken); `ifStatus`
    /// makes the change conditional. `release` gives claimed tasks back to pending.
    #[tool(input_schema = input::<UpdateIn>(), output_schema = output::<TasksOut>(), annotations(destructive_hint = false))]
    async fn task_update(&self, args: JsonObject) -> Answer<TasksOut> {
        let p: UpdateIn = parse(args)?;
        self.call(Access::Write, move |s, l| ops::update(s, l, p))
            .await
            .map(Json)
    }

    /// Claim the next ready task (or a given one) atomically: no two callers ever get the
    /// same task. Answers {task: null} when nothing is claimable (not an error). With
    /// `wait`, waits up to that many seconds for a task to become claimable.
    #[tool(input_schema = input::<ClaimIn>(), output_schema = output::<ClaimOut>(), annotations(destructive_hint = false))]
    async fn task_claim(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Answer<ClaimOut> {
        let p: ClaimIn = parse(args)?;
        let ct = ctx.ct.clone();
        self.call(Access::Write, move |s, l| {
            ops::claim(s, l, p, &|| ct.is_cancelled())
        })
        .await
        .map(Json)
    }

    /// Wait until all, any one, or `count` of the tasks (default: every task of the list)
    /// completed, or one failed, or `timeout` seconds passed (default 30, at most 300:
    /// call again while it answers `timeout`). Answers the outcome, the counts and a
    /// Markdown report of the tasks with their results.
    #[tool(input_schema = input::<WaitIn>(), output_schema = output::<WaitOut>(), annotations(read_only_hint = true))]
    async fn task_wait(
        &self,
        args: JsonObject,
        ctx: RequestContext<RoleServer>,
    ) -> Answer<WaitOut> {
        let p: WaitIn = parse(args)?;
        let ct = ctx.ct.clone();
        self.call(Access::Write, move |s, l| {
            ops::wait(s, l, p, &|| ct.is_cancelled())
        })
        .await
        .map(Json)
    }

    /// Start a pool of workers in the background (worker-spawn --detach): each claims a
    /// ready task, runs `command` for it, and records the result and status; failed tasks
    /// are retried while attempts remain. Returns the pool's pid and log file.
    #[tool(input_schema = input::<PoolStartIn>(), output_schema = output::<PoolStartOut>(), annotations(destructive_hint = false, open_world_hint = true))]
    async fn pool_start(&self, args: JsonObject) -> Answer<PoolStartOut> {
        let p: PoolStartIn = parse(args)?;
        let db = self.shared.db.clone();
        self.call(Access::Write, move |_, l| ops::pool_start(&db, l, p))
            .await
            .map(Json)
    }

    /// Stop this host's pools on the list: they hand their running tasks back to pending
    /// and end.
    #[tool(input_schema = input::<PoolStopIn>(), output_schema = output::<PoolStopOut>(), annotations(destructive_hint = true))]
    async fn pool_stop(&self, args: JsonObject) -> Answer<PoolStopOut> {
        let p: PoolStopIn = parse(args)?;
        self.call(Access::Write, move |s, l| ops::pool_stop(s, l, p))
            .await
            .map(Json)
    }
}
