//! `task-sync`: see `taskstore::cli` for its flags and `taskstore::cmd::sync` for what it does.

fn main() -> std::process::ExitCode {
    taskstore::app::main(taskstore::cmd::sync::run)
}
