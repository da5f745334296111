//! `task-create --from`: JSON lines, one JSON array, or CSV, into tasks to create.
//! Every error names the line (or record) it comes from.

use crate::bail;
use crate::error::{Error, Result};
use crate::model::{check_key, normalize_scope, parse_meta, BlockerRef, NewTask, TaskId, TaskRef};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// One record as written in a batch file (field names as in the task JSON).
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a task object such as {\"subject\":\"Build\"}"
)]
struct Record {
    key: Option<String>,
    subject: Option<String>,
    description: Option<String>,
    active_form: Option<String>,
    blocked_by: Option<Vec<IdOrKey>>,
    priority: Option<i64>,
    metadata: Option<Map<String, Value>>,
    owner: Option<String>,
    max_attempts: Option<i64>,
    scopes: Option<Vec<String>>,
    verify: Option<String>,
}

/// A [`Record`] written as a JSON object only: serde would also take a struct from an
/// array of its fields in order, which no batch file means.
struct Object(Record);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Object, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a task object such as {\"subject\":\"Build\"}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Object, A::Error> {
                Record::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(Visit)
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "each entry must be a task id (3) or a key (\"build\")"
)]
enum IdOrKey {
    Number(i64),
    Text(String),
}

/// A record before its `blockedBy` entries are resolved.
struct Raw {
    task: NewTask,
    blocked_by: Vec<IdOrKey>,
}

/// Parse a whole batch: CSV if `csv`, else one JSON array when the first non-blank
/// character is `[`, else JSON lines.
pub fn parse(input: &[u8], csv: bool) -> Result<Vec<NewTask>> {
    // A byte order mark (Windows editors write one) is not part of the first record.
    let input = input.strip_prefix("\u{feff}".as_bytes()).unwrap_or(input);
    let text = std::str::from_utf8(input).map_err(|e| {
        let line = input[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::usage(format!("line {line}: invalid UTF-8"))
    })?;
    let raws = if csv {
        parse_csv(text)?
    } else if text.trim_start().starts_with('[') {
        parse_array(text)?
    } else {
        parse_lines(text)?
    };
    resolve(raws)
}

fn parse_lines(text: &str) -> Result<Vec<Raw>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("line {}", i + 1);
        let Object(record) = serde_json::from_str(line).map_err(|e| {
            let named = serde_json::from_str(line)
                .ok()
                .and_then(|v| name_field(v, &e));
            Error::usage(format!(
                "{origin}: {}",
                named.unwrap_or_else(|| json_error(&e))
            ))
        })?;
        out.push(from_record(record, origin)?);
    }
    Ok(out)
}

fn parse_array(text: &str) -> Result<Vec<Raw>> {
    let records: Vec<Object> = serde_json::from_str(text).map_err(|e| {
        // Records before the bad one parse, so the first one with a bad field is it.
        let named = serde_json::from_str::<Vec<Value>>(text)
            .ok()
            .and_then(|v| v.into_iter().find_map(|r| name_field(r, &e)));
        Error::usage(format!(
            "line {}: {}",
            e.line(),
            named.unwrap_or_else(|| json_error(&e))
        ))
    })?;
    records
        .into_iter()
        .enumerate()
        .map(|(i, Object(r))| from_record(r, format!("record {}", i + 1)))
        .collect()
}

/// A batch given as JSON values (the MCP server's `task_create`): the rules of a batch
/// file, each record named `tasks[N]` in messages.
pub fn from_values(records: Vec<Value>) -> Result<Vec<NewTask>> {
    let raws = records
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let origin = format!("tasks[{i}]");
            match serde_json::from_value::<Object>(v.clone()) {
                Ok(Object(r)) => from_record(r, origin),
                Err(e) => Err(Error::usage(format!(
                    "{origin}: {}",
                    name_field(v, &e).unwrap_or_else(|| json_error(&e))
                ))),
            }
        })
        .collect::<Result<Vec<Raw>>>()?;
    resolve(raws)
}

/// serde_json's message without its trailing "at line 1 column 5" (we name the line).
fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &msg[..i], e.column()),
        None => msg,
    }
}

/// serde's type errors do not say which field they are about ("invalid type: integer
/// `1`, expected a string"). Find the field of `record` whose value alone gives the same
/// error `e`, and name it: "`description`: invalid type: …".
fn name_field(record: Value, e: &serde_json::Error) -> Option<String> {
    let Value::Object(fields) = record else {
        return None;
    };
    let plain = json_error(e);
    let message = plain.rsplit_once(" (column ").map_or(&*plain, |(m, _)| m);
    if message.starts_with("unknown field") {
        return None; // already named
    }
    fields.into_iter().find_map(|(k, v)| {
        let alone = Value::Object(Map::from_iter([(k.clone(), v)]));
        let err = serde_json::from_value::<Record>(alone).err()?;
        (err.to_string() == message).then(|| format!("`{k}`: {plain}"))
    })
}

fn from_record(r: Record, origin: String) -> Result<Raw> {
    let Some(subject) = r.subject else {
        bail!(usage, "{origin}: missing field `subject`");
    };
    let blocked_by = r.blocked_by.unwrap_or_default();
    Ok(Raw {
        task: NewTask {
            key: r.key,
            subject,
            description: r.description.unwrap_or_default(),
            active_form: r.active_form,
            blocked_by: Vec::new(),
            priority: r.priority.unwrap_or(0),
            metadata: r.metadata.unwrap_or_default(),
            owner: r.owner,
            max_attempts: r.max_attempts.unwrap_or(1),
            scopes: r
                .scopes
                .unwrap_or_default()
                .iter()
                .map(|s| normalize_scope(s).map_err(|e| e.context(&origin)))
                .collect::<Result<_>>()?,
            verify: match r.verify {
                Some(v) if v.trim().is_empty() => bail!(usage, "{origin}: `verify` is empty"),
                v => v,
            },
            origin,
        },
        blocked_by,
    })
}

fn parse_csv(text: &str) -> Result<Vec<Raw>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::usage(format!("CSV header: {e}")))?
        .clone();
    const COLUMNS: &[&str] = &[
        "key",
        "subject",
        "description",
        "activeForm",
        "blockedBy",
        "priority",
        "owner",
        "maxAttempts",
        "scopes",
        "verify",
        "metadata",
    ];
    for (i, h) in headers.iter().enumerate() {
        if headers.iter().take(i).any(|earlier| earlier == h) {
            bail!(usage, "line 1: duplicate CSV column '{h}'");
        }
        if !COLUMNS.contains(&h) && !h.starts_with("metadata.") {
            bail!(
                usage,
                "line 1: unknown CSV column '{h}' (expected {} or metadata.KEY)",
                COLUMNS.join(", ")
            );
        }
    }
    if !headers.iter().any(|h| h == "subject") {
        bail!(usage, "line 1: the CSV header has no 'subject' column");
    }
    let mut out = Vec::new();
    let mut last_record = 0;
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            Error::usage(format!("line {line}: {e}"))
        })?;
        let line = row.position().map_or(0, |p| p.line());
        last_record = row.position().map_or(0, |p| p.byte()) as usize;
        let origin = format!("line {line}");
        let mut task = NewTask {
            max_attempts: 1,
            origin: origin.clone(),
            ..NewTask::default()
        };
        let mut blocked_by = Vec::new();
        for (h, cell) in headers.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            let int = |what: &str| {
                cell.trim().parse::<i64>().map_err(|_| {
                    Error::usage(format!(
                        "{origin}: invalid {what} '{cell}' (expected an integer)"
                    ))
                })
            };
            match h {
                "key" => task.key = Some(cell.to_string()),
                "subject" => task.subject = cell.to_string(),
                "description" => task.description = cell.to_string(),
                "activeForm" => task.active_form = Some(cell.to_string()),
                "owner" => task.owner = Some(cell.to_string()),
                "verify" => task.verify = Some(cell.to_string()),
                "priority" => task.priority = int("priority")?,
                "maxAttempts" => task.max_attempts = int("maxAttempts")?,
                "scopes" => {
                    for scope in cell.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                        task.scopes
                            .push(normalize_scope(scope).map_err(|e| e.context(&origin))?);
                    }
                }
                "blockedBy" => blocked_by.extend(
                    cell.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .map(|s| IdOrKey::Text(s.to_string())),
                ),
                "metadata" => match serde_json::from_str(cell) {
                    Ok(Value::Object(m)) => task.metadata.extend(m),
                    _ => bail!(usage, "{origin}: metadata '{cell}' is not a JSON object"),
                },
                _ => {
                    let key = &h["metadata.".len()..];
                    let (k, v) =
                        parse_meta(&format!("{key}={cell}")).map_err(|e| e.context(&origin))?;
                    if let Some(v) = v {
                        task.metadata.insert(k, v);
                    }
                }
            }
        }
        if task.subject.is_empty() {
            bail!(usage, "{origin}: the subject is empty");
        }
        out.push(Raw { task, blocked_by });
    }
    // The csv crate ends a quoted field left open at the end of the input (a truncated
    // file) without an error, which would store the rest of the file in one field.
    if open_quote(&text.as_bytes()[last_record..]) {
        bail!(
            usage,
            "{}: a quoted field is not closed before the end of the input",
            out.last()
                .map_or("line 1", |r: &Raw| r.task.origin.as_str())
        );
    }
    Ok(out)
}

/// Whether a quoted field is still open at the end of `record` (the raw text from the
/// start of a CSV record to the end of the input), by RFC 4180's rules as the csv crate
/// applies them: a `"` opens quoting only at the start of a field, `""` inside quotes is
/// a quote.
fn open_quote(record: &[u8]) -> bool {
    let mut quoted = false;
    let mut field_start = true;
    let mut bytes = record.iter().peekable();
    while let Some(&b) = bytes.next() {
        if quoted {
            if b == b'"' && bytes.next_if_eq(&&b'"').is_none() {
                quoted = false;
            }
        } else if b == b'"' && field_start {
            quoted = true;
        } else if matches!(b, b',' | b'\n' | b'\r') {
            field_start = true;
            continue;
        }
        field_start = false;
    }
    quoted
}

/// Turn `blockedBy` entries into records of the batch (by key), ids, or keys of tasks
/// already in the list (which the store looks up when it writes the batch).
fn resolve(raws: Vec<Raw>) -> Result<Vec<NewTask>> {
    let mut keys: HashMap<String, usize> = HashMap::new();
    for (i, r) in raws.iter().enumerate() {
        if let Some(k) = &r.task.key {
            check_key(k).map_err(|e| e.context(&r.task.origin))?;
            if let Some(&j) = keys.get(k) {
                bail!(
                    usage,
                    "{}duplicate key '{k}' (first used on {})",
                    r.task.origin_prefix(),
                    raws[j].task.origin
                );
            }
            keys.insert(k.clone(), i);
        }
    }
    raws.into_iter()
        .map(|mut r| {
            let origin = r.task.origin.clone();
            for b in r.blocked_by {
                let reference = match b {
                    IdOrKey::Text(k) if keys.contains_key(&k) => BlockerRef::Record(keys[&k]),
                    IdOrKey::Text(text) => text
                        .parse::<TaskRef>()
                        .map_err(|e| e.context(format!("{origin}: blockedBy")))?
                        .into(),
                    IdOrKey::Number(n) => BlockerRef::Id(
                        n.to_string()
                            .parse::<TaskId>()
                            .map_err(|e| e.context(format!("{origin}: blockedBy")))?,
                    ),
                };
                r.task.blocked_by.push(reference);
            }
            Ok(r.task)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_any_order() {
        let t = parse(
            b"{\"subject\":\"b\",\"blockedBy\":[\"a\",3]}\n\n{\"key\":\"a\",\"subject\":\"a\"}\n",
            false,
        )
        .unwrap();
        assert_eq!(
            t[0].blocked_by,
            vec![BlockerRef::Record(1), BlockerRef::Id(TaskId(3))]
        );
        assert_eq!(t[1].origin, "line 3");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(b"{\"subject\":\"a\"}\n{\"subject\":1}\n", false).unwrap_err();
        assert!(e.message.starts_with("line 2: "), "{}", e.message);
        let e = parse(b"{\"subject\":\"a\",\"bogus\":1}\n", false).unwrap_err();
        assert!(e.message.contains("bogus"), "{}", e.message);
        let e = parse(b"subject,priority\nx,high\n", true).unwrap_err();
        assert!(
            e.message.starts_with("line 2: invalid priority"),
            "{}",
            e.message
        );
        let e = parse(b"{\"subject\":\"a\"}\n\xff\n", false).unwrap_err();
        assert_eq!(e.message, "line 2: invalid UTF-8");
    }

    #[test]
    fn keys_of_the_list() {
        // Not a key of this batch: a key of a task already in the list, for the store.
        let t = parse(
            b"{\"key\":\"b\",\"subject\":\"b\",\"blockedBy\":[\"build\",\"#2\"]}\n",
            false,
        )
        .unwrap();
        assert_eq!(
            t[0].blocked_by,
            vec![BlockerRef::Key("build".into()), BlockerRef::Id(TaskId(2))]
        );
        for (bad, needle) in [
            ("[\"a\\nb\"]", "line 1: blockedBy: invalid key 'a\\nb'"),
            ("[\"\"]", "line 1: blockedBy: invalid key ''"),
            ("[\"#x\"]", "line 1: blockedBy: invalid task id '#x'"),
            ("[0]", "line 1: blockedBy: invalid task id '0'"),
        ] {
            let line = format!("{{\"subject\":\"a\",\"blockedBy\":{bad}}}\n");
            let e = parse(line.as_bytes(), false).unwrap_err();
            assert!(e.message.starts_with(needle), "{}", e.message);
        }
        let e = parse(b"{\"key\":\" k\",\"subject\":\"a\"}\n", false).unwrap_err();
        assert!(
            e.message.starts_with("line 1: invalid key ' k'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn csv_columns() {
        let t = parse(
            b"key,subject,blockedBy,metadata.agent\nb,Build,,builder\n,Test,\"b,1\",tester\n",
            true,
        )
        .unwrap();
        assert_eq!(
            t[1].blocked_by,
            vec![BlockerRef::Record(0), BlockerRef::Id(TaskId(1))]
        );
        assert_eq!(t[1].metadata["agent"], "tester");
    }
}
