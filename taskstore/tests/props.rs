//! Property tests of the input parsers: they never panic, whatever the bytes; valid
//! batches (random subjects, a random dependency DAG, records in any order, as JSON
//! lines, a JSON array or CSV) parse to the same records with every blocker resolved;
//! a batch with a cycle is always refused, naming a record on a cycle; durations,
//! task ids, references (id or key) and list ids are accepted exactly when they should be.
//!
//! Cases per property: 256, or `PROPTEST_CASES` when set.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::time::Duration;
use taskstore::batch;
use taskstore::graph::validate_batch;
use taskstore::model::{
    check_key, parse_duration, parse_limit, parse_meta, BlockerRef, ListId, NewTask, TaskId,
    TaskRef,
};
use taskstore::Kind;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        // Failing inputs are printed; no regression files in the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------

/// Text a parser might meet: anything, or pieces of its own syntax.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+#.0-9a-zA-Z =:_@,;\"'\\\\ \t\n\r{}\\[\\]]{0,24}",
        "[0-9]{1,25}(ns|us|ms|s|m|h|d|w|M|y|x)?",
        "#?[-+]?[0-9]{0,22}",
    ]
}

/// Bytes a batch file might hold: anything, or JSON/CSV-shaped text, possibly cut.
fn batchy() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\"subject\"".to_string()),
        Just("\"key\"".to_string()),
        Just("\"blockedBy\"".to_string()),
        Just("\"metadata\"".to_string()),
        Just("\"priority\"".to_string()),
        Just("subject,key,blockedBy,metadata.k,priority\n".to_string()),
        Just("null".to_string()),
        Just("\u{feff}".to_string()),
        "[a-z0-9#]{1,4}",
        "-?[0-9]{1,22}(\\.[0-9])?",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(token, 0..60).prop_map(|t| t.concat().into_bytes()),
    ]
}

/// A subject that is not blank: any Unicode, control characters included.
fn subject() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{1,12}",
        Just("$(touch PWNED) '; DROP TABLE tasks; -- \"q\" \\ \r\n\t".to_string()),
        Just("ünïcödé 🚀 \u{200b}\u{feff}\u{202e} 中文".to_string()),
    ]
    .prop_map(|mut s| {
        if s.trim().is_empty() {
            s.push('x');
        }
        s
    })
}

/// One record of a generated batch, before it is written in some format.
#[derive(Debug, Clone)]
struct Rec {
    key: String,
    subject: String,
    description: String,
    /// Indexes (in generation order) of the records it waits for.
    after: Vec<usize>,
    /// Existing task ids it waits for.
    ids: Vec<i64>,
}

/// A batch of 1..`max` records whose `after` edges form a DAG (only to earlier
/// records), then shuffled so references point both ways; `order[p]` is the
/// generation index of the record written at position `p`.
fn dag(max: usize, csv_keys: bool) -> impl Strategy<Value = (Vec<Rec>, Vec<usize>)> {
    (1..=max).prop_flat_map(move |n| {
        let key = if csv_keys {
            "[a-z][a-z0-9_.:@+=-]{0,6}".boxed()
        } else {
            prop_oneof!["\\PC{0,6}", "[a-z]{1,6}"].boxed()
        };
        let recs = (0..n)
            .map(|i| {
                (
                    key.clone(),
                    subject(),
                    any::<String>(),
                    proptest::collection::vec(0..i.max(1), 0..=i.min(4)),
                    proptest::collection::vec(1..5i64, 0..2),
                )
                    .prop_map(move |(k, subject, description, after, ids)| Rec {
                        // Unique, and a valid key: never shaped like a task id (no
                        // leading '#'), no white space at either end.
                        key: format!(
                            "{}-{i}",
                            k.trim_start_matches(|c: char| c == '#' || c.is_whitespace())
                        ),
                        subject,
                        description,
                        after: if i == 0 { Vec::new() } else { after },
                        ids,
                    })
            })
            .collect::<Vec<_>>();
        (recs, Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
    })
}

fn csv_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The batch as JSON lines, a JSON array or CSV, records in `order`.
fn write(recs: &[Rec], order: &[usize], format: u8) -> (Vec<u8>, bool) {
    let refs = |r: &Rec| -> Vec<serde_json::Value> {
        let mut v: Vec<serde_json::Value> = r
            .after
            .iter()
            .map(|&j| recs[j].key.clone().into())
            .collect();
        // Existing ids, as numbers and as "#N".
        v.extend(r.ids.iter().enumerate().map(|(n, &id)| {
            if n % 2 == 0 {
                id.into()
            } else {
                format!("#{id}").into()
            }
        }));
        v
    };
    let objects: Vec<serde_json::Value> = order
        .iter()
        .map(|&i| {
            let r = &recs[i];
            serde_json::json!({"key": r.key, "subject": r.subject,
                               "description": r.description, "blockedBy": refs(r)})
        })
        .collect();
    match format {
        0 => {
            let text: String = objects.iter().map(|o| format!("{o}\n")).collect();
            (text.into_bytes(), false)
        }
        1 => (
            serde_json::to_string_pretty(&objects).unwrap().into_bytes(),
            false,
        ),
        _ => {
            let mut text = String::from("key,subject,description,blockedBy\r\n");
            for &i in order {
                let r = &recs[i];
                let blockers: Vec<String> = refs(r)
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect();
                text += &[
                    csv_quote(&r.key),
                    csv_quote(&r.subject),
                    csv_quote(&r.description),
                    csv_quote(&blockers.join(",")),
                ]
                .join(",");
                text += "\r\n";
            }
            (text.into_bytes(), true)
        }
    }
}

/// Whether record `i` can reach itself through blocker references.
fn on_cycle(tasks: &[NewTask], i: usize) -> bool {
    let mut seen = vec![false; tasks.len()];
    let mut stack: Vec<usize> = vec![i];
    while let Some(at) = stack.pop() {
        for b in &tasks[at].blocked_by {
            if let BlockerRef::Record(j) = *b {
                if j == i {
                    return true;
                }
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// No input makes a parser panic; every refusal is a usage error.
    #[test]
    fn parsers_never_panic(s in texty()) {
        for r in [
            parse_duration(&s).err(),
            parse_meta(&s).err(),
            parse_limit(&s).err(),
            s.parse::<TaskId>().err(),
            s.parse::<ListId>().err(),
        ].into_iter().flatten() {
            prop_assert_eq!(r.kind, Kind::Usage, "{}", r.message);
        }
    }

    #[test]
    fn batch_parser_never_panics(bytes in batchy(), csv in any::<bool>()) {
        match batch::parse(&bytes, csv) {
            Ok(tasks) => {
                // Whatever parsed has blockers inside the batch, and the checks
                // before writing do not panic either.
                for t in &tasks {
                    for b in &t.blocked_by {
                        if let BlockerRef::Record(j) = b {
                            prop_assert!(*j < tasks.len());
                        }
                    }
                }
                let _ = validate_batch(&tasks);
            }
            Err(e) => {
                prop_assert_eq!(e.kind, Kind::Usage, "{}", e.message);
                // A batch error says where: a line, a record, or the header.
                prop_assert!(
                    e.message.starts_with("line ") || e.message.starts_with("record ")
                        || e.message.starts_with("CSV header"),
                    "{}", e.message
                );
            }
        }
    }

    /// A valid batch, in any order and any format, parses to the same records with
    /// each blocker resolved to the record (by position) or the id it names.
    #[test]
    fn valid_batches_resolve_every_blocker(
        (recs, order) in dag(12, false),
        (csv_recs, csv_order) in dag(12, true),
        format in 0u8..3,
    ) {
        let (recs, order) = if format == 2 { (csv_recs, csv_order) } else { (recs, order) };
        let (bytes, csv) = write(&recs, &order, format);
        let tasks = batch::parse(&bytes, csv)
            .map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert_eq!(tasks.len(), recs.len());
        let position = |i: usize| order.iter().position(|&o| o == i).unwrap();
        for (p, &i) in order.iter().enumerate() {
            let (t, r) = (&tasks[p], &recs[i]);
            prop_assert_eq!(t.key.as_deref(), Some(r.key.as_str()));
            prop_assert_eq!(&t.subject, &r.subject);
            // An empty CSV cell is "not given": the description defaults to "".
            prop_assert_eq!(&t.description, &r.description);
            let mut want: Vec<BlockerRef> =
                r.after.iter().map(|&j| BlockerRef::Record(position(j))).collect();
            want.extend(r.ids.iter().map(|&id| BlockerRef::Id(TaskId(id))));
            prop_assert_eq!(&t.blocked_by, &want);
        }
        prop_assert!(validate_batch(&tasks).is_ok());
    }

    /// Closing any cycle (of length 1 to n) in a DAG batch is always refused, and the
    /// message names a record that is on a cycle.
    #[test]
    fn a_cycle_is_always_refused(
        (mut recs, order) in dag(10, true),
        len in 1usize..=10,
        seed in any::<u64>(),
        format in 0u8..3,
    ) {
        let n = recs.len();
        let len = len.min(n);
        // `len` distinct records, picked by the seed; each waits for the next, the
        // last for the first.
        let mut pool: Vec<usize> = (0..n).collect();
        let mut x = seed | 1;
        let mut cycle = Vec::new();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cycle.push(pool.swap_remove((x % pool.len() as u64) as usize));
        }
        for m in 0..len {
            let next = cycle[(m + 1) % len];
            recs[cycle[m]].after.push(next);
        }
        let (bytes, csv) = write(&recs, &order, format);
        let tasks = batch::parse(&bytes, csv).map_err(|e| TestCaseError::fail(e.message))?;
        let err = validate_batch(&tasks).expect_err("a cycle was accepted");
        prop_assert_eq!(err.kind, Kind::Usage);
        prop_assert!(err.message.contains("dependency cycle"), "{}", err.message);
        // "line N: dependency cycle: 'KEY' depends, …" (CSV keys are plain names).
        let key = err.message
            .split_once("dependency cycle: '")
            .and_then(|(_, rest)| rest.split_once("' depends, through blockedBy"))
            .map(|(k, _)| k)
            .unwrap_or_default();
        let p = tasks.iter().position(|t| t.key.as_deref() == Some(key));
        prop_assert!(p.is_some(), "{} names no record", err.message);
        let p = p.unwrap();
        // And the line or record it names is that record's.
        let origin = format!("{}: ", tasks[p].origin);
        prop_assert!(err.message.starts_with(&origin), "{} is not at {}", err.message, origin);
        prop_assert!(on_cycle(&tasks, p), "{} names a record on no cycle", err.message);
    }

    /// `Nms` and `Ns` (and plain seconds) are exactly N milliseconds / seconds, up to
    /// the 10^10 s limit; beyond it they are refused.
    #[test]
    fn durations_round_trip(ms in 0u64..10_000_000_000_000, s in 0u64..10_000_000_000, big in 10_000_000_000u64..u64::MAX / 2) {
        prop_assert_eq!(parse_duration(&format!("{ms}ms")).unwrap(), Duration::from_millis(ms));
        prop_assert_eq!(parse_duration(&format!("{s}s")).unwrap(), Duration::from_secs(s));
        prop_assert_eq!(parse_duration(&format!("{s}")).unwrap(), Duration::from_secs(s));
        prop_assert_eq!(parse_duration(&format!(" {s}s ")).unwrap(), Duration::from_secs(s));
        let (too_long, too_long_plain, negative) =
            (format!("{big}s"), big.to_string(), format!("-{s}s"));
        prop_assert!(parse_duration(&too_long).is_err());
        prop_assert!(parse_duration(&too_long_plain).is_err());
        prop_assert!(parse_duration(&negative).is_err());
    }

    /// A task id is a positive integer that fits in an i64, with an optional '#'.
    #[test]
    fn task_ids_are_exactly_positive_integers(s in prop_oneof![
        texty(),
        (1..=i64::MAX, any::<bool>()).prop_map(|(n, h)| format!("{}{n}", if h { "#" } else { "" })),
        "#?0{0,3}[0-9]{0,20}",
    ]) {
        let digits = s.strip_prefix('#').unwrap_or(&s);
        let model = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<i64>().ok())
            .flatten()
            .filter(|&n| n > 0);
        match s.parse::<TaskId>() {
            Ok(id) => prop_assert_eq!(Some(id.0), model, "accepted {:?}", s),
            Err(e) => {
                prop_assert_eq!(None, model, "refused {:?}", s);
                prop_assert!(e.message.contains(&format!("'{s}'")), "{}", e.message);
            }
        }
    }

    /// A reference (`-b`, `--add-blocked-by`) is an id when shaped like one (digits, or
    /// '#' first), parsed as a task id; else a key, kept exactly, when a valid key: not
    /// empty, no control character, no white space at either end. Never both.
    #[test]
    fn references_are_ids_or_keys_never_both(s in prop_oneof![
        texty(),
        "#?[0-9]{0,22}",
        "[ #a-z0-9\t\n-]{0,6}",
    ]) {
        let id_shaped = s.starts_with('#') || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        let key_ok = !id_shaped
            && !s.is_empty()
            && !s.chars().any(char::is_control)
            && s.trim() == s;
        prop_assert_eq!(check_key(&s).is_ok(), key_ok, "{:?}", s);
        match s.parse::<TaskRef>() {
            Ok(TaskRef::Id(id)) => {
                prop_assert!(id_shaped, "{:?} became an id", s);
                prop_assert_eq!(s.parse::<TaskId>().ok(), Some(id));
            }
            Ok(TaskRef::Key(k)) => {
                prop_assert!(key_ok, "{:?} became a key", s);
                prop_assert_eq!(k, s);
            }
            Err(e) => {
                prop_assert_eq!(e.kind, Kind::Usage);
                prop_assert!(!key_ok && (!id_shaped || s.parse::<TaskId>().is_err()), "{:?} refused", s);
            }
        }
    }

    /// A list id is 1–128 of [A-Za-z0-9._:@+=-], not starting with '.'.
    #[test]
    fn list_ids_are_exactly_the_allowed_names(s in prop_oneof![
        texty(),
        "[A-Za-z0-9._:@+=-]{0,130}",
        "[A-Za-z0-9._:@+=-]{120,130}",
    ]) {
        let model = (1..=128).contains(&s.len())
            && !s.starts_with('.')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "._:@+=-".contains(c));
        prop_assert_eq!(s.parse::<ListId>().is_ok(), model, "{:?}", s);
    }

    /// `--limit KEY=N`: a non-empty key and a whole N ≥ 1.
    #[test]
    fn limits_are_exactly_key_and_positive_count(k in "[^=]{0,5}", n in any::<i64>(), junk in "|[^0-9]{1,3}") {
        let s = format!("{k}={n}{junk}");
        let want = (!k.is_empty() && n >= 1 && junk.is_empty()).then(|| (k.clone(), n));
        prop_assert_eq!(parse_limit(&s).ok(), want, "{:?}", s);
    }
}
