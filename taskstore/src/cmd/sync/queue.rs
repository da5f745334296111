//! A queue folder: one markdown file per work item, named `NNN-STATUS-slug.md` with
//! STATUS one of `pending`, `in_progress`, `completed`, `blocked`; an agent moves an
//! item along by renaming it, and names what it waits for on a line `BlockedBy: 001,
//! 003`. This module knows the folder and its files; `queue_pass.rs` keeps them and a
//! list in step.

use crate::error::Result;
use crate::model::{Status, Task};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A file written less than this long ago may still be being written: it is read once
/// it has been left alone this long.
pub const SETTLE: Duration = Duration::from_millis(100);

/// The statuses a file name can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pending,
    InProgress,
    Completed,
    /// Failed or cancelled: it needs someone to look at it.
    Blocked,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Pending => "pending",
            Mark::InProgress => "in_progress",
            Mark::Completed => "completed",
            Mark::Blocked => "blocked",
        }
    }

    fn parse(s: &str) -> Option<Mark> {
        [
            Mark::Pending,
            Mark::InProgress,
            Mark::Completed,
            Mark::Blocked,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// How a task's status is shown in a file name.
    pub fn of(t: &Task) -> Mark {
        match t.status {
            Status::Pending => Mark::Pending,
            Status::InProgress => Mark::InProgress,
            Status::Completed => Mark::Completed,
            Status::Failed | Status::Cancelled => Mark::Blocked,
        }
    }

    /// The status a task takes when its file is renamed to this.
    pub fn status(self) -> Status {
        match self {
            Mark::Pending => Status::Pending,
            Mark::InProgress => Status::InProgress,
            Mark::Completed => Status::Completed,
            Mark::Blocked => Status::Failed,
        }
    }
}

/// One item file, as its name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub num: i64,
    /// How many digits its number is written with (`007`: 3).
    pub digits: usize,
    pub mark: Mark,
    pub slug: String,
    pub name: String,
}

/// `NNN-STATUS-slug.md` → the item; anything else is not one. The status is the
/// longest that fits (`in_progress`), the slug what follows it, not empty.
pub fn item(name: &str) -> Option<Item> {
    let stem = name.strip_suffix(".md")?;
    let (num, rest) = stem.split_once('-')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (mark, slug) = rest.split_once('-')?;
    let (mark, slug) = match (mark, slug.strip_prefix("progress-")) {
        ("in", Some(s)) => (Mark::InProgress, s),
        _ => (Mark::parse(mark)?, slug),
    };
    if slug.is_empty() {
        return None;
    }
    Some(Item {
        num: num.parse().ok().filter(|&n| n > 0)?,
        digits: num.len(),
        mark,
        slug: slug.to_string(),
        name: name.to_string(),
    })
}

/// The name of item `num` with `mark`.
pub fn name(num: i64, digits: usize, mark: Mark, slug: &str) -> String {
    format!("{num:0digits$}-{}-{slug}.md", mark.as_str())
}

/// A slug for a subject: lower-case letters and digits, other runs as one `-`, at most
/// 40 characters.
pub fn slug(subject: &str) -> String {
    let mut s = String::new();
    for c in subject.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
        if s.len() >= 40 {
            break;
        }
    }
    let s = s.trim_end_matches('-');
    match s {
        "" => "task".to_string(),
        s => s.to_string(),
    }
}

/// An item's subject: its first `# ` heading, else its slug.
pub fn subject(text: &str, slug: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(slug)
        .to_string()
}

/// The numbers an item waits for: every `BlockedBy:` line (any case, also `Blocked by:`),
/// each entry a number or an item's file name.
pub fn blocked_by(text: &str) -> Vec<i64> {
    let mut nums = Vec::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if !key
            .trim()
            .replace(' ', "")
            .eq_ignore_ascii_case("blockedby")
        {
            continue;
        }
        for entry in rest
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let digits: String = entry.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<i64>() {
                if n > 0 && !nums.contains(&n) {
                    nums.push(n);
                }
            }
        }
    }
    nums
}

/// The text of a new file for a task made elsewhere: its subject as the heading, its
/// description, and what it waits for.
pub fn text(t: &Task, blockers: &[(i64, usize)]) -> String {
    let mut s = format!("# {}\n", t.subject);
    if !t.description.trim().is_empty() {
        s += &format!("\n{}\n", t.description.trim_end());
    }
    if !blockers.is_empty() {
        let b: Vec<String> = blockers.iter().map(|&(n, d)| format!("{n:0d$}")).collect();
        s += &format!("\nBlockedBy: {}\n", b.join(", "));
    }
    s
}

/// The folder.
pub struct Folder {
    pub path: PathBuf,
}

/// What the folder holds: items by number, and names that are not items.
#[derive(Default)]
pub struct Listing {
    pub items: BTreeMap<i64, Item>,
    /// Names that are not items (hidden files left out), and items whose number another
    /// item has already, with why each is left alone.
    pub strangers: Vec<(String, String)>,
}

impl Listing {
    /// The most digits an item's number is written with, at least 3.
    pub fn digits(&self) -> usize {
        self.items
            .values()
            .map(|i| i.digits)
            .max()
            .unwrap_or(3)
            .max(3)
    }
}

impl Folder {
    /// The folder, made if missing (as Claude Code's folder is).
    pub fn open(path: PathBuf) -> Result<Folder> {
        let crate::claude::Dir { path } = crate::claude::Dir::open(path)?;
        Ok(Folder { path })
    }

    pub fn list(&self) -> io::Result<Listing> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let mut l = Listing::default();
        for n in names {
            match item(&n) {
                None => l.strangers.push((
                    n,
                    "not a queue item (NNN-pending|in_progress|completed|blocked-slug.md)".into(),
                )),
                Some(i) => match l.items.get(&i.num) {
                    Some(first) => {
                        let why = format!("number {} is {}'s already", i.num, first.name);
                        l.strangers.push((n, why));
                    }
                    None => {
                        l.items.insert(i.num, i);
                    }
                },
            }
        }
        Ok(l)
    }

    /// An item's text, once nobody has written it for [`SETTLE`]: None when it is still
    /// being written (it changed while it was read, or moments ago) or is gone.
    pub fn read(&self, i: &Item) -> io::Result<Option<String>> {
        let path = self.path.join(&i.name);
        let stamp = |m: &std::fs::Metadata| (m.len(), m.modified().ok());
        let before = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let age = before
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or(SETTLE);
        if age < SETTLE {
            return Ok(None);
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match std::fs::metadata(&path) {
            Ok(after) if stamp(&after) == stamp(&before) => {
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            _ => Ok(None),
        }
    }

    /// Rename an item to another status, its text untouched; None when the file is no
    /// longer there under its name (an agent renamed it meanwhile: the next pass sees it).
    pub fn rename(&self, i: &Item, mark: Mark) -> io::Result<Option<String>> {
        let new = name(i.num, i.digits, mark, &i.slug);
        match std::fs::rename(self.path.join(&i.name), self.path.join(&new)) {
            Ok(()) => Ok(Some(new)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write a new item whole (a temporary file, then a link to its name, which fails
    /// rather than replace a file of that name).
    pub fn create(&self, name: &str, text: &str) -> io::Result<()> {
        let tmp = self
            .path
            .join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        let linked = std::fs::hard_link(&tmp, self.path.join(name));
        let _ = std::fs::remove_file(&tmp);
        linked
    }

    pub fn remove(&self, i: &Item) -> io::Result<()> {
        match std::fs::remove_file(self.path.join(&i.name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let i = item("001-pending-frontend.md").unwrap();
        assert_eq!(
            (i.num, i.digits, i.mark, i.slug.as_str()),
            (1, 3, Mark::Pending, "frontend")
        );
        let i = item("12-in_progress-api-v2.md").unwrap();
        assert_eq!(
            (i.num, i.digits, i.mark, i.slug.as_str()),
            (12, 2, Mark::InProgress, "api-v2")
        );
        assert_eq!(item("003-blocked-x.md").unwrap().mark, Mark::Blocked);
        for bad in [
            "notes.txt",
            "abc-pending-x.md",
            "001-done-x.md",
            "001-pending-.md",
            "001-pending.md",
            "000-pending-x.md",
            "-pending-x.md",
        ] {
            assert_eq!(item(bad), None, "{bad}");
        }
        assert_eq!(name(7, 3, Mark::Completed, "x"), "007-completed-x.md");
    }

    #[test]
    fn texts() {
        assert_eq!(slug("Fix the API: v2 (now!)"), "fix-the-api-v2-now");
        assert_eq!(slug("!!!"), "task");
        assert_eq!(subject("intro\n# Build it \nmore", "slug"), "Build it");
        assert_eq!(subject("no heading", "the-slug"), "the-slug");
        assert_eq!(
            blocked_by("x\nBlockedBy: 001, 003\nblocked by: 002-pending-a.md 3\n"),
            [1, 3, 2]
        );
    }
}
