//! `task-mcp`: the store as an MCP server over stdio (rmcp), for agents that reach tools
//! over MCP rather than a shell. The tools (`tools.rs`) are thin: each runs the logic of
//! `ops.rs` — the command-line tools' rules, on the same store — on a blocking thread,
//! with a connection this server keeps open for the session.

mod ops;
mod params;
mod schema;
mod tools;

use crate::cli::McpArgs;
use crate::error::{Error, Kind, Result};
use crate::model::ListId;
use crate::store::{Access, Store};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every call shares: where the store is, the default list, and the open
/// connections. One is enough for calls one after another; a call made while another
/// runs (a `task_wait` blocks for up to 300 s) opens one more, kept for the next.
struct Shared {
    db: PathBuf,
    sync: crate::store::Sync,
    list: ListId,
    idle: Mutex<Vec<Box<dyn Store>>>,
}

impl Shared {
    /// Run `f` with a connection: an idle one, else a new one. The first connection is
    /// opened by the first call, with that call's access: `task_create` makes a store
    /// that does not exist yet, as task-create does; the other tools say there is none.
    fn with_store<T>(
        &self,
        access: Access,
        f: impl FnOnce(&mut dyn Store, &ListId) -> Result<T>,
    ) -> Result<T> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut store = match idle {
            Some(s) => s,
            None => {
                let mut s = crate::store::open(&self.db, self.sync, access)?;
                // A server that outlives a PostgreSQL restart reconnects.
                s.keep_trying(Duration::from_secs(30));
                s
            }
        };
        let r = f(store.as_mut(), &self.list);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        r
    }
}

#[derive(Clone)]
pub struct Tasks {
    shared: Arc<Shared>,
    tool_router: ToolRouter<Tasks>,
}

impl Tasks {
    /// Run a store operation on a blocking thread; its error becomes the tool's error
    /// result.
    #[allow(clippy::result_large_err)] // rmcp's failed result, by value
    async fn call<T: Send + 'static>(
        &self,
        access: Access,
        f: impl FnOnce(&mut dyn Store, &ListId) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, CallToolResult> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.with_store(access, f))
            .await
            .unwrap_or_else(|e| Err(Error::store(format!("the call failed: {e}"))))
            .map_err(failure)
    }
}

/// The name of an error's kind, as a failed call reports it beside the exit code.
fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Negative => "negative",
        Kind::Usage => "usage",
        Kind::NotFound => "not_found",
        Kind::Conflict => "conflict",
        Kind::Store => "store",
        Kind::Timeout => "timeout",
        Kind::BrokenPipe => "broken_pipe",
    }
}

/// A failed call: `isError`, and one text, `{"error","code","kind"}`: the message the
/// command-line tool would print, its exit code and the code's name. One block, as
/// Claude Code hands a failed call's first text to the model and drops the rest. No
/// structured content: clients check that against the tool's output schema, which
/// describes a success.
fn failure(e: Error) -> CallToolResult {
    let text = serde_json::json!({
        "error": e.message,
        "code": e.kind.exit_code(),
        "kind": kind_name(e.kind),
    });
    CallToolResult::error(vec![ContentBlock::text(text.to_string())])
}

#[rmcp::tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for Tasks {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("task-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "A shared task list (default list '{}'): task_create adds tasks with dependencies, \
                 task_claim takes the next ready one, task_update records its result and status, \
                 task_wait waits for tasks to finish and reports. The shell tools task-list, \
                 task-update, … see the same store.",
                self.shared.list
            ))
    }
}

pub fn main() -> ExitCode {
    let args: McpArgs = match crate::app::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("task-mcp: {e}");
            ExitCode::from(e.kind.exit_code())
        }
    }
}

fn serve(args: McpArgs) -> Result<()> {
    use rmcp::ServiceExt;
    let shared = Arc::new(Shared {
        db: args.store.path()?,
        sync: args.store.sync()?,
        list: args.store.list.clone(),
        idle: Mutex::new(Vec::new()),
    });
    let tasks = Tasks {
        shared: shared.clone(),
        tool_router: Tasks::tool_router(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::store(format!("cannot start: {e}")))?;
    let served = rt.block_on(async {
        let running = tasks
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::usage(format!("the client's initialization failed: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| Error::store(format!("{e}")))?;
        Ok(())
    });
    // A call still blocked in the store (a task_wait) must not keep the process alive
    // once the client is gone.
    rt.shutdown_background();
    // The connections close here, outside the runtime: the PostgreSQL client blocks on
    // a runtime of its own when it closes, which tokio forbids inside another's tasks.
    drop(shared);
    served
}
