//! parallel-tasks: the task store, the clap definitions and the logic of every binary.
//! The binaries' `main.rs` files only call [`app::main`] with a `cmd::*::run`.

pub mod app;
pub mod batch;
pub mod claude;
pub mod cli;
pub mod cmd;
pub mod diagram;
pub mod error;
pub mod graph;
pub mod host;
pub mod html;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod model;
pub mod output;
pub mod probe;
pub mod report;
pub mod signals;
pub mod store;
pub mod time;
pub mod watch;

pub use error::{Cause, Error, Kind, Result};
