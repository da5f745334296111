//! `task-mcp`: see `taskstore::cli::McpArgs` for its flags and `taskstore::mcp` for what it
//! serves.

fn main() -> std::process::ExitCode {
    taskstore::mcp::main()
}
