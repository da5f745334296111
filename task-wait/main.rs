//! `task-wait`: see `taskstore::cli` for its flags and `taskstore::cmd::wait` for what it does.

fn main() -> std::process::ExitCode {
    taskstore::app::main(taskstore::cmd::wait::run)
}
