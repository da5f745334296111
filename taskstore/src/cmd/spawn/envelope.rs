//! Claude Code's result envelope: what `claude -p --output-format json` prints (one JSON
//! object), and the last line of `--output-format stream-json`. worker-spawn reads it so
//! that a task run by a Claude Code worker gets the agent's answer as its result, fails
//! when the agent says it failed (even with exit 0), and keeps the session, the cost and
//! the turns: `{"type":"result","subtype":"success","is_error":false,"result":"…",
//! "session_id":"…","total_cost_usd":0.012,"num_turns":3,"duration_ms":8120,…}`.
//!
//! Anything else — other JSON, a broken envelope — is not an envelope: the output is
//! stored as it is.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The agent's answer (absent when it stopped on an error such as `error_max_turns`).
    pub result: Option<String>,
    pub is_error: bool,
    /// `success`, `error_max_turns`, `error_during_execution`, …
    pub subtype: String,
    pub session_id: Option<String>,
    pub cost_usd: Option<f64>,
    pub turns: Option<i64>,
    pub duration_ms: Option<i64>,
    /// What the envelope says went wrong (`errors`, or an error `result`), for the log.
    pub errors: Vec<String>,
}

/// The envelope in a command's stdout: the whole output as one JSON object, else its last
/// non-empty line (stream-json). It must say `"type":"result"` and carry `subtype` and
/// `is_error`; anything less is not taken for one.
pub fn parse(stdout: &[u8]) -> Option<Envelope> {
    let end = stdout.trim_ascii_end();
    if !end.ends_with(b"}") {
        return None;
    }
    // The whole output, else its last line (what came before may even be cut off
    // mid-character by --max-output: only the last line must be text).
    let whole = serde_json::from_slice::<Value>(end).ok();
    let v = match whole {
        Some(v) => v,
        None => {
            let last = end.rsplit(|&b| b == b'\n').next()?;
            serde_json::from_slice(last).ok()?
        }
    };
    let o = v.as_object()?;
    if o.get("type")?.as_str()? != "result" {
        return None;
    }
    let is_error = o.get("is_error")?.as_bool()?;
    let subtype = o.get("subtype")?.as_str()?.to_string();
    let text_of = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let mut errors: Vec<String> = o
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if is_error && errors.is_empty() {
        errors.extend(text_of("result").filter(|r| !r.is_empty()));
    }
    Some(Envelope {
        result: text_of("result"),
        is_error,
        subtype,
        session_id: text_of("session_id"),
        cost_usd: o.get("total_cost_usd").and_then(Value::as_f64),
        turns: o.get("num_turns").and_then(Value::as_i64),
        duration_ms: o.get("duration_ms").and_then(Value::as_i64),
        errors,
    })
}

impl Envelope {
    /// `metadata.claude` after this attempt: the session to resume, the cost summed over
    /// every attempt (`before` is the task's metadata as claimed), this attempt's turns,
    /// duration and subtype.
    pub fn metadata(&self, before: &Map<String, Value>) -> Value {
        let spent = crate::model::claude_cost(before).unwrap_or(0.0);
        let cost = match self.cost_usd {
            Some(c) => Some(spent + c),
            None if spent > 0.0 => Some(spent),
            None => None,
        };
        json!({
            "sessionId": self.session_id,
            "costUsd": cost,
            "turns": self.turns,
            "durationMs": self.duration_ms,
            "subtype": self.subtype,
        })
    }

    /// The log line of an envelope that says the agent failed.
    pub fn failure_line(&self) -> String {
        let mut line = format!("claude: {} (is_error)", self.subtype);
        if !self.errors.is_empty() {
            line += ": ";
            line += &self.errors.join("; ");
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn an_envelope_whole_or_as_the_last_line_of_a_stream() {
        let one = br#"{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s1","total_cost_usd":0.5,"num_turns":2,"duration_ms":900}"#;
        let e = parse(one).expect("an envelope");
        assert_eq!(e.result.as_deref(), Some("done"));
        assert_eq!(
            (e.cost_usd, e.turns, e.is_error),
            (Some(0.5), Some(2), false)
        );
        let mut stream = b"{\"type\":\"system\",\"subtype\":\"init\"}\n".to_vec();
        stream.extend_from_slice(one);
        stream.push(b'\n');
        assert_eq!(parse(&stream), Some(e));
        let err = br#"{"type":"result","subtype":"error_max_turns","is_error":true,"session_id":"s2","num_turns":1}"#;
        let e = parse(err).expect("an error envelope");
        assert_eq!((e.result.as_deref(), e.is_error), (None, true));
        assert_eq!(e.failure_line(), "claude: error_max_turns (is_error)");
    }

    #[test]
    fn other_output_is_not_an_envelope() {
        for out in [
            &b"plain text"[..],
            br#"{"type":"result"}"#,
            br#"{"result":"x","is_error":false,"subtype":"success"}"#,
            br#"[1, 2]"#,
            br#"{"type":"result","subtype":"success","is_error":"no"}"#,
            b"",
        ] {
            assert_eq!(parse(out), None, "{}", String::from_utf8_lossy(out));
        }
    }
}
