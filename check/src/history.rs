//! Histories: one record per operation, as JSON lines.
//!
//! ```json
//! {"process":3,"op":"set","key":"k","value":"p3-17","outcome":"ok","invoke_ns":1200,"complete_ns":5400}
//! ```
//!
//! - `op`: `set | get | delete | list | clear`.
//! - `outcome`: `ok | not_found | fail | unknown | damaged`.
//!   - `get`/`ok` carries the `value` read; `get`/`not_found`: the key was absent.
//!   - `list`/`ok` carries `"keys":[...]`.
//!   - `delete`/`not_found`: the key was absent (nothing deleted).
//!   - `fail`: the store reported a definite failure — the operation did not happen.
//!   - `unknown`: it may or may not have happened (timeout, crash); `complete_ns` is
//!     `null`.
//!   - `damaged` (`get` and `list` only): the read completed but its answer was
//!     damaged — torn, undecryptable, garbage. It carries no `value`/`keys`; an
//!     optional `"detail"` says what was wrong. A correct store never shows a
//!     reader a damaged state, so `clobber check` reports every damaged read as a
//!     violation ("torn/damaged read"). A damaged read is not a `fail`: `fail`
//!     means the store definitely did nothing, which is harmless for a read.
//! - `invoke_ns`, `complete_ns`: the system-wide monotonic clock, in nanoseconds.
//! - Optional `error`: the store's message for `fail`/`unknown` outcomes.
//! - Optional `detail`: what was wrong with a `damaged` read (only there).
//!
//! Values written by the harness are unique (writer + sequence), so every read names
//! the one write it came from.

use std::fmt;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// An operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Write `value` under `key`.
    Set,
    /// Read `key`.
    Get,
    /// Remove `key`.
    Delete,
    /// Read every key name.
    List,
    /// Remove every key.
    Clear,
}

impl Op {
    /// The name used in histories.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::Get => "get",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Clear => "clear",
        }
    }

    /// True for operations that may change the store.
    #[must_use]
    pub fn is_mutation(self) -> bool {
        matches!(self, Op::Set | Op::Delete | Op::Clear)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened (for `get`: the key was present, with `value`).
    Ok,
    /// `get`/`delete`: the key was absent.
    NotFound,
    /// The store reported a definite failure: it did not happen.
    Fail,
    /// It may or may not have happened.
    Unknown,
    /// A read (`get`, `list`) whose answer was damaged: torn, undecryptable or
    /// garbage. Always a violation.
    Damaged,
}

impl Outcome {
    /// The name used in histories.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
            Outcome::Damaged => "damaged",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The process (worker) that performed it.
    pub process: u64,
    /// What it did.
    pub op: Op,
    /// The key (`set`, `get`, `delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value written (`set`) or read (`get`/`ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The keys listed (`list`/`ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// How it ended.
    pub outcome: Outcome,
    /// When it was invoked (monotonic ns).
    pub invoke_ns: u64,
    /// When it completed (monotonic ns); `None` for `unknown`.
    pub complete_ns: Option<u64>,
    /// The store's message, for `fail` and `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was wrong with a `damaged` read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A malformed history line.
#[derive(Debug, thiserror::Error)]
#[error("history line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl Record {
    /// Check the record's fields agree with its op and outcome.
    ///
    /// # Errors
    /// A message naming the missing or extra field.
    pub fn validate(&self) -> Result<(), String> {
        validate_fields(&Fields {
            op: self.op,
            outcome: self.outcome,
            has_key: self.key.is_some(),
            has_value: self.value.is_some(),
            has_keys: self.keys.is_some(),
            invoke_ns: self.invoke_ns,
            complete_ns: self.complete_ns,
            has_detail: self.detail.is_some(),
        })
    }
}

/// The fields of a record that [`validate_fields`] looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub op: Op,
    pub outcome: Outcome,
    pub has_key: bool,
    pub has_value: bool,
    pub has_keys: bool,
    pub invoke_ns: u64,
    pub complete_ns: Option<u64>,
    pub has_detail: bool,
}

/// Check a record's fields agree with its op and outcome.
pub(crate) fn validate_fields(f: &Fields) -> Result<(), String> {
    let needs_key = matches!(f.op, Op::Set | Op::Get | Op::Delete);
    if needs_key && !f.has_key {
        return Err(format!("{} needs a \"key\"", f.op));
    }
    if !needs_key && f.has_key {
        return Err(format!("{} takes no \"key\"", f.op));
    }
    if f.op == Op::Set && !f.has_value {
        return Err("set needs the \"value\" it wrote".into());
    }
    if f.op == Op::Get && f.outcome == Outcome::Ok && !f.has_value {
        return Err("get with outcome ok needs the \"value\" it read".into());
    }
    if f.op == Op::List && f.outcome == Outcome::Ok && !f.has_keys {
        return Err("list with outcome ok needs \"keys\"".into());
    }
    if f.outcome == Outcome::Damaged {
        if !matches!(f.op, Op::Get | Op::List) {
            return Err(format!(
                "{} cannot end damaged (only reads, get and list, can)",
                f.op
            ));
        }
        if f.has_value || f.has_keys {
            return Err("a damaged read carries no \"value\" or \"keys\" (say what was wrong in \"detail\")".into());
        }
    } else if f.has_detail {
        return Err(format!(
            "\"detail\" belongs to outcome damaged, not {}",
            f.outcome
        ));
    }
    if f.outcome == Outcome::NotFound && !matches!(f.op, Op::Get | Op::Delete) {
        return Err(format!("{} cannot end not_found", f.op));
    }
    match (f.outcome, f.complete_ns) {
        (Outcome::Unknown, Some(_)) => {
            return Err("outcome unknown must have \"complete_ns\": null".into());
        }
        (Outcome::Unknown, None) => {}
        (_, None) => return Err(format!("outcome {} needs \"complete_ns\"", f.outcome)),
        (_, Some(c)) if c < f.invoke_ns => {
            return Err(format!(
                "complete_ns {c} is before invoke_ns {}",
                f.invoke_ns
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Read a JSON-lines history, validating every record. Blank lines are skipped.
///
/// # Errors
/// [`ParseError`] naming the first bad line.
pub fn read_jsonl(input: impl BufRead) -> Result<Vec<Record>, ParseError> {
    let mut records = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| ParseError {
            line: line_no,
            message: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line).map_err(|e| ParseError {
            line: line_no,
            message: e.to_string(),
        })?;
        record.validate().map_err(|message| ParseError {
            line: line_no,
            message,
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Write one record as a JSON line.
///
/// # Errors
/// I/O errors from `out`.
pub fn write_record(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let line = r#"{"process":3,"op":"set","key":"k","value":"p3-17","outcome":"ok","invoke_ns":1200,"complete_ns":5400}"#;
        let h = read_jsonl(line.as_bytes()).unwrap();
        assert_eq!(h[0].process, 3);
        assert_eq!(h[0].op, Op::Set);
        assert_eq!(h[0].complete_ns, Some(5400));
        let mut out = Vec::new();
        write_record(&mut out, &h[0]).unwrap();
        assert_eq!(read_jsonl(&out[..]).unwrap(), h);
    }

    #[test]
    fn malformed_lines_are_named() {
        let input = "\n{\"process\":1,\"op\":\"get\",\"outcome\":\"ok\",\"invoke_ns\":1,\"complete_ns\":2}\n";
        let err = read_jsonl(input.as_bytes()).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("key"), "{err}");
        let err = read_jsonl(&b"{\"process\":1}"[..]).unwrap_err();
        assert_eq!(err.line, 1);
        let unknown_done = r#"{"process":1,"op":"set","key":"k","value":"v","outcome":"unknown","invoke_ns":1,"complete_ns":2}"#;
        assert!(read_jsonl(unknown_done.as_bytes()).is_err());
    }
}
