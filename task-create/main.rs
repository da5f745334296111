//! `task-create`: see `taskstore::cli` for its flags and `taskstore::cmd::create` for what it does.

fn main() -> std::process::ExitCode {
    taskstore::app::main(taskstore::cmd::create::run)
}
