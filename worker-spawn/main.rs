//! `worker-spawn`: see `taskstore::cli` for its flags and `taskstore::cmd::spawn` for what it does.

fn main() -> std::process::ExitCode {
    taskstore::app::main(taskstore::cmd::spawn::run)
}
