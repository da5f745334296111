//! One module per binary: `run(args, stdout) -> exit code`.

pub mod completions;
pub mod create;
pub mod list;
mod live;
pub mod spawn;
pub mod sync;
pub mod update;
pub mod wait;
mod waker;

use crate::bail;
use crate::error::{Error, Result};
use crate::model::TaskId;
use std::io::Read;

/// Standard input can be consumed once: by `-` ids, or one `TEXT|-` value.
#[derive(Default)]
pub struct Stdin {
    used_by: Option<&'static str>,
}

impl Stdin {
    fn take(&mut self, what: &'static str) -> Result<String> {
        String::from_utf8(self.take_bytes(what)?)
            .map_err(|_| Error::usage(format!("{what}: standard input is not valid UTF-8")))
    }

    /// All of stdin as bytes (a batch names the line of bad UTF-8 itself).
    fn take_bytes(&mut self, what: &'static str) -> Result<Vec<u8>> {
        if let Some(first) = self.used_by {
            bail!(
                usage,
                "standard input can be read only once, but both {first} and {what} ask for it"
            );
        }
        self.used_by = Some(what);
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::usage(format!("cannot read standard input: {e}")))?;
        Ok(buf)
    }

    /// Ids from arguments, where `-` stands for the ids on stdin (one a line).
    pub fn ids(&mut self, args: &[String]) -> Result<Vec<TaskId>> {
        let mut ids = Vec::new();
        for a in args {
            if a == "-" {
                for line in self.take("'-' (ids)")?.lines() {
                    let line = line.trim();
                    if !line.is_empty() {
                        ids.push(line.parse()?);
                    }
                }
            } else {
                ids.push(a.parse()?);
            }
        }
        Ok(ids)
    }

    /// A `TEXT|-` value: `-` reads all of stdin.
    pub fn text(&mut self, value: Option<String>, flag: &'static str) -> Result<Option<String>> {
        match value.as_deref() {
            Some("-") => self.take(flag).map(Some),
            _ => Ok(value),
        }
    }
}
