//! What every `main.rs` shares: parse, run, print the error, map it to the exit code.

use crate::error::{Kind, Result};
use std::io::{BufWriter, Write};
use std::process::ExitCode;

/// Run a binary: `run` gets the parsed arguments and a buffered stdout and returns the
/// exit code of a success (0, or 1 for a negative answer that is not an error).
pub fn main<A: clap::Parser>(run: fn(A, &mut dyn Write) -> Result<u8>) -> ExitCode {
    crate::probe::phase("start");
    let bin = A::command().get_name().to_string();
    // Past a file-size limit (`ulimit -f`) a write should fail with EFBIG, which the
    // store reports as a store error (exit 5), instead of SIGXFSZ killing the process.
    // SAFETY: ignoring a signal installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    let args = match parse::<A>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    crate::probe::phase("parse");
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let result = run(args, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.kind == Kind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // Whatever was buffered belongs to a run that failed: drop it (stdout stays
            // empty on error as long as the output fit in the buffer).
            drop(out.into_parts());
            eprintln!("{bin}: {e}");
            ExitCode::from(e.kind.exit_code())
        }
    }
}

/// Parse the arguments, or say why not (or print the help or version) and give the exit
/// code to end with.
pub fn parse<A: clap::Parser>() -> Result<A, ExitCode> {
    A::try_parse().map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if matches!(e.kind(), DisplayHelp | DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let msg = e.render().to_string();
        let bin = A::command().get_name().to_string();
        eprint!("{bin}: {}", msg.strip_prefix("error: ").unwrap_or(&msg));
        ExitCode::from(Kind::Usage.exit_code())
    })
}
