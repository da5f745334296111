//! `shell-completions`: see `taskstore::cli` for its flags and `taskstore::cmd::completions` for what it does.

fn main() -> std::process::ExitCode {
    taskstore::app::main(taskstore::cmd::completions::run)
}
