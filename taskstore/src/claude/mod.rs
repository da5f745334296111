//! Claude Code's own task files, as its tools (v2.1) keep them: one directory a list,
//! `<n>.json` a task (pretty JSON: `id` = "n", `subject`, `description`, optional
//! `activeForm`, `status` pending | in_progress | completed, optional `owner`, `blocks`
//! and `blockedBy` as arrays of ids, optional `metadata`), `.highwatermark` (the last id
//! handed out, written when files are deleted) and the lock (`lock.rs`). Claude Code
//! writes a file in place, so a reader can see it half-written; a file it cannot parse
//! is invisible to it.
//!
//! This module reads and writes that directory and nothing else: what a file means for
//! the store is `cmd::sync`'s business.

pub mod lock;

use crate::error::{Error, Result};
use crate::model::ListId;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The statuses a Claude Code task file may have.
pub const STATUSES: [&str; 3] = ["pending", "in_progress", "completed"];

/// The directory of `list`: `$CLAUDE_CONFIG_DIR/tasks/<name>`, else
/// `$HOME/.claude/tasks/<name>`, where the name is the list id with every character
/// outside `[A-Za-z0-9_-]` replaced by `-`, as Claude Code names it.
pub fn default_dir(list: &ListId) -> Result<PathBuf> {
    let config = crate::cli::xdg_home("CLAUDE_CONFIG_DIR", ".claude").ok_or_else(|| {
        Error::usage("cannot find Claude Code's folder: set --dir, CLAUDE_CONFIG_DIR or HOME")
    })?;
    Ok(config.join("tasks").join(dir_name(list.as_str())))
}

/// A list id as Claude Code turns it into a directory name.
pub fn dir_name(list: &str) -> String {
    list.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// One task file as read: its fields (a JSON object, unknown keys included) and its
/// bytes, to notice a change by another writer before it is replaced.
#[derive(Debug, Clone)]
pub struct File {
    pub fields: Map<String, Value>,
    pub bytes: Vec<u8>,
}

/// What a read of the directory found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The task files that parse, by id.
    pub files: BTreeMap<i64, File>,
    /// Task files that do not parse (maybe half-written), by id, with the reason.
    pub unreadable: BTreeMap<i64, String>,
    /// `.highwatermark`, when there and a number.
    pub highwatermark: Option<i64>,
}

impl Listing {
    /// Whether a task file with this id is there (readable or not).
    pub fn has(&self, id: i64) -> bool {
        self.files.contains_key(&id) || self.unreadable.contains_key(&id)
    }

    /// The largest id in use: of a file, or the high-water mark.
    pub fn last_id(&self) -> i64 {
        let files = self.files.keys().chain(self.unreadable.keys()).max();
        files
            .copied()
            .unwrap_or(0)
            .max(self.highwatermark.unwrap_or(0))
    }
}

/// One list's directory.
pub struct Dir {
    pub path: PathBuf,
}

/// A task file's id from its name: `<n>.json`, n a positive number without leading zeros.
pub fn file_id(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".json")?;
    if stem.is_empty() || stem.starts_with('0') || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().filter(|&n| n > 0)
}

/// How often a file that does not parse is read again, a moment apart, before it is
/// called unreadable: Claude Code may be in the middle of writing it.
const REREADS: u32 = 3;

impl Dir {
    /// The directory at `path`, created if missing.
    pub fn open(path: PathBuf) -> Result<Dir> {
        std::fs::create_dir_all(&path).map_err(|e| {
            Error::usage(format!("cannot create the folder {}: {e}", path.display()))
        })?;
        if !path.is_dir() {
            return Err(Error::usage(format!("{} is not a folder", path.display())));
        }
        Ok(Dir { path })
    }

    fn file_path(&self, id: i64) -> PathBuf {
        self.path.join(format!("{id}.json"))
    }

    /// Read every task file and the high-water mark. Other names are left alone.
    pub fn read(&self) -> io::Result<Listing> {
        let mut listing = Listing::default();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(file_id) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match self.read_task(id) {
                Ok(Some(file)) => {
                    listing.files.insert(id, file);
                }
                Ok(None) => {} // deleted meanwhile
                Err(why) => {
                    listing.unreadable.insert(id, why);
                }
            }
        }
        listing.highwatermark = read_highwatermark(&self.path);
        Ok(listing)
    }

    /// The largest id in use now, from the names alone (no file is read): of a task file
    /// (readable or not), or the high-water mark.
    pub fn last_id(&self) -> io::Result<i64> {
        let mut last = read_highwatermark(&self.path).unwrap_or(0);
        for entry in std::fs::read_dir(&self.path)? {
            if let Some(id) = entry?.file_name().to_str().and_then(file_id) {
                last = last.max(id);
            }
        }
        Ok(last)
    }

    /// Read one task file: None when it is not there, Err(reason) when it does not parse
    /// as a task after a few tries.
    fn read_task(&self, id: i64) -> std::result::Result<Option<File>, String> {
        let mut tries = 0;
        loop {
            let bytes = match self.bytes(id) {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            match parse(id, &bytes) {
                Ok(fields) => return Ok(Some(File { fields, bytes })),
                Err(why) if tries + 1 >= REREADS => return Err(why),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }

    /// The bytes of a task file, None when it is not there.
    pub fn bytes(&self, id: i64) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.file_path(id)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write a task file whole: a temporary file, then a rename over the old one, so that
    /// Claude Code never reads it half-written. Pretty JSON, as Claude Code writes it.
    pub fn write(&self, id: i64, fields: &Map<String, Value>) -> io::Result<()> {
        let tmp = self
            .path
            .join(format!(".{id}.json.{}.tmp", std::process::id()));
        let mut text = serde_json::to_vec_pretty(fields).expect("a JSON object serialises");
        text.push(b'\n');
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&text))
            .and_then(|()| std::fs::rename(&tmp, self.file_path(id)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Delete a task file (gone already is fine).
    pub fn remove(&self, id: i64) -> io::Result<()> {
        match std::fs::remove_file(self.file_path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn read_highwatermark(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(".highwatermark"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Check that `bytes` is a task file Claude Code would accept for id `id`; its object.
pub fn parse(id: i64, bytes: &[u8]) -> std::result::Result<Map<String, Value>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(m) = v else {
        return Err("not a JSON object".into());
    };
    match m.get("id") {
        Some(Value::String(s)) if s == &id.to_string() => {}
        Some(other) => return Err(format!("its id is {other}, not \"{id}\" as its name says")),
        None => return Err("it has no id".into()),
    }
    for key in ["subject", "description"] {
        if !m.get(key).is_some_and(Value::is_string) {
            return Err(format!("'{key}' is missing or not a string"));
        }
    }
    match m.get("status").and_then(Value::as_str) {
        Some(s) if STATUSES.contains(&s) => {}
        _ => return Err("'status' is not pending, in_progress or completed".into()),
    }
    for key in ["blocks", "blockedBy"] {
        let ok = match m.get(key) {
            Some(Value::Array(a)) => a.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            return Err(format!("'{key}' is not an array of ids"));
        }
    }
    for key in ["activeForm", "owner"] {
        if !matches!(
            m.get(key),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            return Err(format!("'{key}' is not a string"));
        }
    }
    if !matches!(
        m.get("metadata"),
        None | Some(Value::Null) | Some(Value::Object(_))
    ) {
        return Err("'metadata' is not an object".into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids_become_claude_code_folder_names() {
        assert_eq!(dir_name("review"), "review");
        assert_eq!(dir_name("team.a:b@c+d=e_f-g"), "team-a-b-c-d-e_f-g");
    }

    #[test]
    fn only_numbered_json_files_are_tasks() {
        assert_eq!(file_id("12.json"), Some(12));
        for name in [
            "0.json",
            "012.json",
            "a.json",
            "12.json.tmp",
            ".12.json.9.tmp",
            ".lock",
            "12",
        ] {
            assert_eq!(file_id(name), None, "{name}");
        }
    }

    #[test]
    fn a_file_claude_code_would_refuse_is_refused() {
        let good = br#"{"id":"3","subject":"s","description":"","status":"pending","blocks":[],"blockedBy":["1"]}"#;
        assert!(parse(3, good).is_ok());
        assert!(parse(4, good).unwrap_err().contains("not \"4\""));
        let half = &good[..good.len() / 2];
        assert!(parse(3, half).unwrap_err().starts_with("not JSON"));
        let bad = br#"{"id":"3","subject":"s","description":"","status":"done","blocks":[],"blockedBy":[]}"#;
        assert!(parse(3, bad).unwrap_err().contains("status"));
        let bad = br#"{"id":"3","subject":"s","description":"","status":"pending","blocks":[1],"blockedBy":[]}"#;
        assert!(parse(3, bad).unwrap_err().contains("blocks"));
    }
}
