//! The key-value store model: `set` / `get` / `delete` / `list` / `clear`, checked
//! as one [`Register`](super::register::Register) per key.
//!
//! # Partitioning, and what `list` and `clear` become
//! Single-key operations commute across keys, so a history of single-key operations
//! is linearizable iff each key's sub-history is (Herlihy & Wing's locality; the
//! "P-compositionality" Porcupine exploits). `list` and `clear` span keys. We
//! **project** them onto every key the history mentions:
//! - `clear` becomes, on each key, an unconditional removal at the same interval;
//! - `list` becomes, on each key, an observation: "present" if the key was listed,
//!   "absent" otherwise.
//!
//! Each key is then checked alone. This is **sound for violations** (a key whose
//! projection cannot be linearized proves the whole history cannot), but not
//! complete: the projection lets a `list` or `clear` take effect at a different
//! instant on each key, so a history where no *single* instant fits every key at once
//! can pass. [`crate::joint`] closes part of that gap; the report says so
//! in a note whenever the history contains a `list` or a `clear`. The price of an exact check would be a search over the whole map, which is
//! exponential in the number of concurrent operations on all keys together.
//!
//! # Outcomes
//! `fail` operations are dropped (they did not happen); `unknown` mutations may take
//! effect at any time after their invocation, or never; `unknown` reads are dropped
//! (they constrain nothing). An `unknown` `delete` becomes an unconditional removal
//! (if it happened, the key was absent afterwards either way). `damaged` reads are
//! kept aside in [`KvHistory::damaged`]: each is a violation on its own, and their
//! answers say nothing about any key.

use std::borrow::Cow;
use std::io::BufRead;

use rayon::prelude::*;
use serde::Deserialize;

use super::Entry;
use super::register::{ABSENT, Action, RegEntry, Reply};
use crate::history::{Fields, Op, Outcome, ParseError, Record, validate_fields};
use crate::intern::Interner;

/// "No key" in [`KvOp::key`].
pub const NO_KEY: u32 = 0;
/// "No list" in [`KvOp::list`].
pub const NO_LIST: u32 = u32::MAX;

/// One operation of a [`KvHistory`], with its strings interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvOp {
    /// The process.
    pub process: u64,
    /// Invoke time (ns).
    pub invoke: u64,
    /// Completion time (ns), `None` for `unknown`.
    pub complete: Option<u64>,
    /// The key, or [`NO_KEY`].
    pub key: u32,
    /// The value written or read, or [`ABSENT`].
    pub value: u32,
    /// Index into [`KvHistory::lists`] for `list`/`ok`, or [`NO_LIST`].
    pub list: u32,
    /// The operation.
    pub op: Op,
    /// Its outcome.
    pub outcome: Outcome,
}

/// A key-value history with interned keys and values: the checker's input.
#[derive(Debug, Clone)]
pub struct KvHistory {
    /// Key names (id 0 = no key).
    pub keys: Interner,
    /// Value names (id 0 = absent).
    pub values: Interner,
    /// The operations, in record order.
    pub ops: Vec<KvOp>,
    /// The key sets seen by `list` operations.
    pub lists: Vec<Vec<u32>>,
    /// The damaged reads (outcome `damaged`): record index and the `detail` given.
    pub damaged: Vec<(usize, Option<String>)>,
}

impl Default for KvHistory {
    fn default() -> Self {
        KvHistory {
            keys: Interner::new("<no key>"),
            values: Interner::new("<absent>"),
            ops: Vec::new(),
            lists: Vec::new(),
            damaged: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordRef<'a> {
    process: u64,
    op: Op,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    keys: Option<Vec<Cow<'a, str>>>,
    outcome: Outcome,
    invoke_ns: u64,
    complete_ns: Option<u64>,
    #[serde(default, borrow)]
    #[allow(dead_code)]
    error: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    detail: Option<Cow<'a, str>>,
}

/// Bytes per parallel batch.
const CHUNK: usize = 4 << 20;

/// Read whole lines, about [`CHUNK`] bytes (empty at the end of the input).
fn read_chunk(input: &mut impl BufRead, line_base: usize) -> Result<Vec<u8>, ParseError> {
    let mut buf = Vec::with_capacity(CHUNK + (64 << 10));
    while buf.len() < CHUNK {
        let n = input.read_until(b'\n', &mut buf).map_err(|e| ParseError {
            line: line_base + 1,
            message: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
    }
    Ok(buf)
}

/// A string of a parsed line: a byte range of the chunk, or owned when it had
/// escapes.
enum Str {
    Range(usize, usize),
    Owned(String),
}

/// The bytes of a [`Str`] (the parser checked they are UTF-8).
fn bytes<'a>(chunk: &'a [u8], s: &'a Str) -> &'a [u8] {
    match s {
        Str::Range(a, b) => &chunk[*a..*b],
        Str::Owned(o) => o.as_bytes(),
    }
}

/// A parsed line, owning no borrow of the chunk.
struct Parsed {
    process: u64,
    op: Op,
    key: Option<Str>,
    value: Option<Str>,
    keys: Option<Vec<Str>>,
    outcome: Outcome,
    invoke_ns: u64,
    complete_ns: Option<u64>,
    detail: Option<String>,
}

/// Parse every line of a chunk in parallel (one result per line).
fn parse_chunk(chunk: &[u8], line_base: usize) -> Vec<Result<Option<Parsed>, ParseError>> {
    let lines: Vec<&[u8]> = chunk.split(|&b| b == b'\n').collect();
    // A final newline leaves an empty slice that is not a line.
    let count = if chunk.ends_with(b"\n") || chunk.is_empty() {
        lines.len() - 1
    } else {
        lines.len()
    };
    let base = chunk.as_ptr() as usize;
    let str_of = |c: &Cow<'_, str>| match c {
        Cow::Borrowed(s) => {
            let a = s.as_ptr() as usize - base;
            Str::Range(a, a + s.len())
        }
        Cow::Owned(o) => Str::Owned(o.clone()),
    };
    lines[..count]
        .par_iter()
        .enumerate()
        .with_min_len(1024)
        .map(|(i, line)| {
            parse_line(line, line_base + i + 1).map(|r| {
                r.map(|r| Parsed {
                    process: r.process,
                    op: r.op,
                    key: r.key.as_ref().map(str_of),
                    value: r.value.as_ref().map(str_of),
                    keys: r.keys.as_ref().map(|ks| ks.iter().map(str_of).collect()),
                    outcome: r.outcome,
                    invoke_ns: r.invoke_ns,
                    complete_ns: r.complete_ns,
                    detail: r.detail.map(Cow::into_owned),
                })
            })
        })
        .collect()
}

/// A byte cursor for [`fast_record`].
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn lit(&mut self, l: &[u8]) -> Option<()> {
        if self.s[self.i..].starts_with(l) {
            self.i += l.len();
            Some(())
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(&c) = self.s.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        (self.i > start && (self.i - start == 1 || self.s[start] != b'0')).then_some(n)
    }

    /// A string without escapes or control characters (anything else: `None`).
    fn string(&mut self) -> Option<&'a str> {
        self.lit(b"\"")?;
        let start = self.i;
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'"' => {
                    let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                    self.i += 1;
                    return Some(text);
                }
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        None
    }
}

/// Parse a record laid out exactly as [`crate::history::write_record`] writes it
/// (fields in declaration order, no spaces, no escapes, no `keys`); anything else
/// returns `None` and goes to the general JSON parser.
fn fast_record(line: &[u8]) -> Option<RecordRef<'_>> {
    let mut c = Cursor { s: line, i: 0 };
    c.lit(b"{\"process\":")?;
    let process = c.number()?;
    c.lit(b",\"op\":")?;
    let op = match c.string()? {
        "set" => Op::Set,
        "get" => Op::Get,
        "delete" => Op::Delete,
        "list" => Op::List,
        "clear" => Op::Clear,
        _ => return None,
    };
    let key = if c.lit(b",\"key\":").is_some() {
        Some(Cow::Borrowed(c.string()?))
    } else {
        None
    };
    let value = if c.lit(b",\"value\":").is_some() {
        Some(Cow::Borrowed(c.string()?))
    } else {
        None
    };
    c.lit(b",\"outcome\":")?;
    let outcome = match c.string()? {
        "ok" => Outcome::Ok,
        "not_found" => Outcome::NotFound,
        "fail" => Outcome::Fail,
        "unknown" => Outcome::Unknown,
        "damaged" => Outcome::Damaged,
        _ => return None,
    };
    c.lit(b",\"invoke_ns\":")?;
    let invoke_ns = c.number()?;
    c.lit(b",\"complete_ns\":")?;
    let complete_ns = if c.lit(b"null").is_some() {
        None
    } else {
        Some(c.number()?)
    };
    let error = if c.lit(b",\"error\":").is_some() {
        Some(Cow::Borrowed(c.string()?))
    } else {
        None
    };
    let detail = if c.lit(b",\"detail\":").is_some() {
        Some(Cow::Borrowed(c.string()?))
    } else {
        None
    };
    c.lit(b"}")?;
    if !c.s[c.i..].iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(RecordRef {
        process,
        op,
        key,
        value,
        keys: None,
        outcome,
        invoke_ns,
        complete_ns,
        error,
        detail,
    })
}

/// Parse and validate one line; `None` for a blank line.
fn parse_line(line: &[u8], line_no: usize) -> Result<Option<RecordRef<'_>>, ParseError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let r: RecordRef<'_> = match fast_record(line) {
        Some(r) => r,
        None => serde_json::from_slice(line).map_err(|e| ParseError {
            line: line_no,
            message: e.to_string(),
        })?,
    };
    validate_fields(&Fields {
        op: r.op,
        outcome: r.outcome,
        has_key: r.key.is_some(),
        has_value: r.value.is_some(),
        has_keys: r.keys.is_some(),
        invoke_ns: r.invoke_ns,
        complete_ns: r.complete_ns,
        has_detail: r.detail.is_some(),
    })
    .map_err(|message| ParseError {
        line: line_no,
        message,
    })?;
    Ok(Some(r))
}

impl KvHistory {
    /// Intern a list of records (already validated, e.g. by
    /// [`read_jsonl`](crate::history::read_jsonl) or by the harness that wrote them).
    #[must_use]
    pub fn from_records(records: &[Record]) -> Self {
        let mut h = KvHistory::default();
        h.ops.reserve(records.len());
        for r in records {
            h.push(
                r.process,
                r.op,
                r.key.as_deref().map(str::as_bytes),
                r.value.as_deref().map(str::as_bytes),
                r.keys.as_ref().map(|ks| ks.iter().map(String::as_bytes)),
                r.outcome,
                r.invoke_ns,
                r.complete_ns,
            );
            if r.outcome == Outcome::Damaged {
                h.damaged.push((h.ops.len() - 1, r.detail.clone()));
            }
        }
        h
    }

    /// Read a JSON-lines history straight into interned form (no `Record` is kept,
    /// so a million operations fit in a few tens of megabytes).
    ///
    /// # Errors
    /// [`ParseError`] naming the first bad line.
    pub fn read_jsonl(mut input: impl BufRead) -> Result<Self, ParseError> {
        // Chunks of whole lines are parsed in parallel; while one chunk's strings are
        // interned (sequentially), the next chunk is parsed.
        let mut h = KvHistory::default();
        let mut base = 0usize;
        let mut cur = read_chunk(&mut input, base)?;
        let mut parsed = parse_chunk(&cur, base);
        while !cur.is_empty() {
            let count = parsed.len();
            let next = read_chunk(&mut input, base + count)?;
            let (next_parsed, interned) = rayon::join(
                || parse_chunk(&next, base + count),
                || h.intern_chunk(&cur, parsed),
            );
            interned?;
            base += count;
            cur = next;
            parsed = next_parsed;
        }
        Ok(h)
    }

    fn intern_chunk(
        &mut self,
        chunk: &[u8],
        parsed: Vec<Result<Option<Parsed>, ParseError>>,
    ) -> Result<(), ParseError> {
        for r in parsed {
            let Some(r) = r? else { continue };
            self.push(
                r.process,
                r.op,
                r.key.as_ref().map(|k| bytes(chunk, k)),
                r.value.as_ref().map(|v| bytes(chunk, v)),
                r.keys.as_ref().map(|ks| ks.iter().map(|k| bytes(chunk, k))),
                r.outcome,
                r.invoke_ns,
                r.complete_ns,
            );
            if r.outcome == Outcome::Damaged {
                self.damaged.push((self.ops.len() - 1, r.detail));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn push<'k>(
        &mut self,
        process: u64,
        op: Op,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        keys: Option<impl Iterator<Item = &'k [u8]>>,
        outcome: Outcome,
        invoke: u64,
        complete: Option<u64>,
    ) {
        let key = key.map_or(NO_KEY, |k| self.keys.intern_bytes(k));
        let value = value.map_or(ABSENT, |v| self.values.intern_bytes(v));
        let list = match keys {
            Some(ks) if op == Op::List && outcome == Outcome::Ok => {
                let mut ids: Vec<u32> = ks.map(|k| self.keys.intern_bytes(k)).collect();
                ids.sort_unstable();
                ids.dedup();
                self.lists.push(ids);
                u32::try_from(self.lists.len() - 1).expect("fewer than 2^32 lists")
            }
            _ => NO_LIST,
        };
        self.ops.push(KvOp {
            process,
            invoke,
            complete,
            key,
            value,
            list,
            op,
            outcome,
        });
    }

    /// The record indices of each key's single-key operations, and the indices of the
    /// multi-key operations (`list`, `clear`) shared by every key.
    #[must_use]
    pub fn split(&self) -> (Vec<Vec<u32>>, Vec<u32>) {
        let mut per_key: Vec<Vec<u32>> = vec![Vec::new(); self.keys.len()];
        let mut shared = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 operations");
            if op.key == NO_KEY {
                if matches!(op.outcome, Outcome::Ok | Outcome::Unknown) {
                    shared.push(i);
                }
            } else {
                per_key[op.key as usize].push(i);
            }
        }
        (per_key, shared)
    }

    /// The register operations of `key`: its own operations and the projection of
    /// the shared `list`/`clear` operations (see the module docs).
    #[must_use]
    ///
    /// A `list` that finished before the key's first write began and does not show
    /// the key is left out: the key was absent then whatever happened, so it
    /// constrains nothing (this keeps keys created late cheap).
    pub fn project(&self, key: u32, own: &[u32], shared: &[u32]) -> Vec<RegEntry> {
        let first_write = own
            .iter()
            .map(|&i| &self.ops[i as usize])
            .filter(|o| o.op == Op::Set && o.outcome != Outcome::Fail)
            .map(|o| o.invoke)
            .min()
            .unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity(own.len() + shared.len());
        for &i in own.iter().chain(shared) {
            let op = &self.ops[i as usize];
            if op.op == Op::List
                && op.list != NO_LIST
                && op.complete.is_some_and(|c| c < first_write)
                && self.lists[op.list as usize].binary_search(&key).is_err()
            {
                continue;
            }
            let (action, reply) = match (op.op, op.outcome) {
                // A failed operation did not happen; a damaged read is judged on its
                // own (see `check`), its answer says nothing about the key.
                (_, Outcome::Fail | Outcome::Damaged) => continue,
                (Op::Set, _) => (Action::Write(op.value), Reply::Ok),
                (Op::Get, Outcome::Ok) => (Action::Read, Reply::Value(op.value)),
                (Op::Get, Outcome::NotFound) => (Action::Read, Reply::Value(ABSENT)),
                (Op::Delete, Outcome::Ok) => (Action::Delete, Reply::Ok),
                (Op::Delete, Outcome::NotFound) => (Action::Delete, Reply::NotFound),
                (Op::Delete | Op::Clear, Outcome::Unknown) => (Action::Clear, Reply::Ok),
                (Op::Clear, _) => (Action::Clear, Reply::Ok),
                (Op::List, Outcome::Ok) => {
                    let listed = self.lists[op.list as usize].binary_search(&key).is_ok();
                    let reply = if listed {
                        Reply::Present
                    } else {
                        Reply::Value(ABSENT)
                    };
                    (Action::Read, reply)
                }
                // Reads whose result is unknown constrain nothing.
                (Op::Get | Op::List, _) => continue,
            };
            out.push(Entry {
                process: op.process,
                invoke: op.invoke,
                complete: op.complete,
                input: action,
                output: reply,
                source: i as usize,
            });
        }
        out
    }

    /// Does the history contain a `list` or a `clear` that took (or may have taken)
    /// effect?
    #[must_use]
    pub fn has_multi_key_ops(&self) -> bool {
        self.ops
            .iter()
            .any(|o| o.key == NO_KEY && matches!(o.outcome, Outcome::Ok | Outcome::Unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_line_parser_agrees_with_serde_and_declines_what_it_cannot_read() {
        use crate::generator::{GenOptions, Mix, generate};
        let g = generate(&GenOptions {
            ops: 3000,
            keys: 5,
            mix: Mix {
                list: 5.0,
                clear: 2.0,
                ..Mix::default()
            },
            indeterminate: 0.1,
            ..GenOptions::default()
        });
        let mut fast_hits = 0;
        for r in &g.records {
            let mut line = Vec::new();
            crate::history::write_record(&mut line, r).unwrap();
            let slow: RecordRef<'_> = serde_json::from_slice(&line).unwrap();
            let Some(fast) = fast_record(&line) else {
                assert!(
                    r.keys.is_some(),
                    "only lists need the general parser: {r:?}"
                );
                continue;
            };
            fast_hits += 1;
            let view = |x: &RecordRef<'_>| {
                (
                    x.process,
                    x.op,
                    x.key.as_deref().map(str::to_owned),
                    x.value.as_deref().map(str::to_owned),
                    x.outcome,
                    x.invoke_ns,
                    x.complete_ns,
                    x.error.as_deref().map(str::to_owned),
                    x.detail.as_deref().map(str::to_owned),
                )
            };
            assert_eq!(view(&fast), view(&slow));
        }
        assert!(fast_hits > 2500, "{fast_hits}");
        // Escapes, spaces, other field orders and leading zeros go to serde.
        for odd in [
            &br#"{"process":1,"op":"get","key":"a"b","outcome":"not_found","invoke_ns":1,"complete_ns":2}"#[..],
            br#"{"process": 1,"op":"get","key":"a","outcome":"not_found","invoke_ns":1,"complete_ns":2}"#,
            br#"{"op":"get","process":1,"key":"a","outcome":"not_found","invoke_ns":1,"complete_ns":2}"#,
            br#"{"process":01,"op":"get","key":"a","outcome":"not_found","invoke_ns":1,"complete_ns":2}"#,
            br#"{"process":1,"op":"get","key":"a","outcome":"not_found","invoke_ns":1,"complete_ns":2} x"#,
        ] {
            assert!(fast_record(odd).is_none(), "{}", String::from_utf8_lossy(odd));
        }
    }

    fn line(i: usize) -> String {
        format!(
            "{{\"process\":1,\"op\":\"set\",\"key\":\"k{}\",\"value\":\"v{i}\",\"outcome\":\"ok\",\"invoke_ns\":{i},\"complete_ns\":{}}}\n",
            i % 7,
            i + 1
        )
    }

    #[test]
    fn parallel_parsing_keeps_order_escapes_and_line_numbers_across_chunks() {
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str(&line(i));
            if i == 10 {
                text.push('\n'); // a blank line counts as a line
            }
        }
        text.push_str(
            "{\"process\":2,\"op\":\"get\",\"key\":\"k\\\"q\",\"value\":\"a\\nb\",\"outcome\":\"ok\",\"invoke_ns\":1,\"complete_ns\":2}\n",
        );
        assert!(text.len() > 2 * CHUNK, "the input spans several chunks");
        let h = KvHistory::read_jsonl(text.as_bytes()).unwrap();
        assert_eq!(h.ops.len(), 100_001);
        assert!(
            h.ops
                .iter()
                .take(100_000)
                .enumerate()
                .all(|(i, o)| o.invoke == i as u64)
        );
        assert_eq!(h.values.name(h.ops[99_999].value), "v99999");
        let last = h.ops[100_000];
        assert_eq!(h.keys.name(last.key), "k\"q");
        assert_eq!(h.values.name(last.value), "a\nb");

        // An error far into the input names its line (blank line included).
        let mut bad = text.clone();
        bad.push_str("{\"process\":1,\"op\":\"get\",\"outcome\":\"ok\"}\n");
        let err = KvHistory::read_jsonl(bad.as_bytes()).unwrap_err();
        assert_eq!(err.line, 100_003);
    }
}
