//! `task-update`: see `taskstore::cli` for its flags and `taskstore::cmd::update` for what it does.

fn main() -> std::process::ExitCode {
    taskstore::app::main(taskstore::cmd::update::run)
}
