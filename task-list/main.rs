//! `task-list`: see `taskstore::cli` for its flags and `taskstore::cmd::list` for what it does.

fn main() -> std::process::ExitCode {
    taskstore::app::main(taskstore::cmd::list::run)
}
