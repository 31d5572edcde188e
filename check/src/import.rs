//! Importers for public history formats.
//!
//! - [`jepsen_register`]: Jepsen's register test logs, one event per line:
//!   `INFO  jepsen.util - 3 :invoke :write 4`, `... 3 :ok :write 4`,
//!   `... :invoke :cas [3 0]`, `... :fail :cas [3 0]`, `... :info :read nil`.
//! - [`edn_kv`]: EDN maps, one per line, as in Jepsen's and Porcupine's key-value
//!   logs: `{:process 0, :type :invoke, :f :get, :key "5", :value nil}`, with `:put`
//!   and `:append`.
//!
//! Semantics: `:ok` happened; `:fail` did not happen, except that a failed `:cas` is
//! an observation (the compare did not match); `:info`, or an invocation never
//! answered, is indeterminate (a write may take effect any time after its
//! invocation, or never; a read constrains nothing). A failed read (`:fail :read
//! :timed-out`) is a read whose result is unknown. A process that gets `:info` is
//! finished: Jepsen continues with a new process number. Times are the line order
//! unless an EDN event carries `:time`.
//!
//! Malformed input is an error naming the line; an invocation by a process that
//! already has one outstanding, and a completion without an invocation (or for a
//! different function), are rejected.

use std::collections::HashMap;
use std::io::BufRead;

use crate::history::ParseError;
use crate::intern::Interner;
use crate::model::Entry;
use crate::model::register::{ABSENT, Action, RegEntry, Reply};
use crate::model::strkv::{StrInput, StrOutput};

/// A register history: interned values (`nil` = [`ABSENT`]) and operations. Each
/// entry's `source` is the 1-based line of its invocation.
#[derive(Debug, Clone)]
pub struct RegisterHistory {
    /// Value names.
    pub values: Interner,
    /// The operations.
    pub entries: Vec<RegEntry>,
}

/// A string key-value history; each entry's `source` is the 1-based line of its
/// invocation.
pub type StrKvHistory = Vec<Entry<StrInput, StrOutput>>;

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// An event: who, what type, which function, what value, when.
#[derive(Debug, Clone)]
struct Event {
    process: u64,
    kind: Kind,
    f: String,
    key: Option<String>,
    value: Value,
    time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            ":invoke" => Some(Kind::Invoke),
            ":ok" => Some(Kind::Ok),
            ":fail" => Some(Kind::Fail),
            ":info" => Some(Kind::Info),
            _ => None,
        }
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Nil,
    Int(i64),
    Str(String),
    Keyword(String),
    Vec(Vec<Value>),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Nil => "nil".into(),
            Value::Int(i) => i.to_string(),
            Value::Str(s) => s.clone(),
            Value::Keyword(k) => k.clone(),
            Value::Vec(v) => format!(
                "[{}]",
                v.iter().map(Value::text).collect::<Vec<_>>().join(" ")
            ),
        }
    }
}

/// An invocation (with its line) and its completion, if any.
type Paired = ((usize, Event), Option<Event>);

/// Pair invocations with completions. Returns (invoke, completion) pairs in
/// invocation order; the completion is `None` when the invocation was never answered.
fn pair(events: Vec<(usize, Event)>) -> Result<Vec<Paired>, ParseError> {
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Paired> = Vec::new();
    for (line, ev) in events {
        if ev.kind == Kind::Invoke {
            if let Some(&prev) = open.get(&ev.process) {
                return Err(err(
                    line,
                    format!(
                        "process {} invoked again while its operation from line {} is outstanding",
                        ev.process, out[prev].0.0
                    ),
                ));
            }
            open.insert(ev.process, out.len());
            out.push(((line, ev), None));
        } else {
            let Some(i) = open.remove(&ev.process) else {
                return Err(err(
                    line,
                    format!(
                        "process {} completed an operation it never invoked",
                        ev.process
                    ),
                ));
            };
            if out[i].0.1.f != ev.f || out[i].0.1.key != ev.key {
                return Err(err(
                    line,
                    format!(
                        "completion {} {:?} does not match the invocation {} {:?} on line {}",
                        ev.f, ev.key, out[i].0.1.f, out[i].0.1.key, out[i].0.0
                    ),
                ));
            }
            if ev.time < out[i].0.1.time {
                return Err(err(line, "the completion is timed before its invocation"));
            }
            out[i].1 = Some(ev);
        }
    }
    Ok(out)
}

/// Parse a Jepsen register log.
///
/// # Errors
/// [`ParseError`] naming the first malformed, duplicate or unmatched line.
pub fn jepsen_register(input: impl BufRead) -> Result<RegisterHistory, ParseError> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let no = i + 1;
        let line = line.map_err(|e| err(no, e.to_string()))?;
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(t) = tokens.iter().position(|t| Kind::parse(t).is_some()) else {
            if line.contains(":invoke") || line.contains(":ok") {
                return Err(err(no, "unrecognised event line"));
            }
            continue; // not an event (other log output)
        };
        let kind = Kind::parse(tokens[t]).expect("found above");
        let Some(proc_tok) = t.checked_sub(1).map(|p| tokens[p]) else {
            return Err(err(no, "no process before the event type"));
        };
        if proc_tok == ":nemesis" {
            continue;
        }
        let process: u64 = proc_tok
            .parse()
            .map_err(|_| err(no, format!("bad process {proc_tok:?}")))?;
        let Some(f) = tokens.get(t + 1) else {
            return Err(err(no, "no function after the event type"));
        };
        let rest = tokens[t + 2..].join(" ");
        let value = if rest.is_empty() {
            Value::Nil
        } else {
            let mut p = EdnParser::new(&rest);
            let v = p.value().map_err(|m| err(no, m))?;
            p.skip_ws();
            if !p.done() {
                return Err(err(no, format!("trailing text after the value: {rest:?}")));
            }
            v
        };
        if !matches!(*f, ":read" | ":write" | ":cas") {
            return Err(err(no, format!("unknown register function {f}")));
        }
        events.push((
            no,
            Event {
                process,
                kind,
                f: (*f).to_owned(),
                key: None,
                value,
                time: u64::try_from(no).unwrap_or(u64::MAX),
            },
        ));
    }
    let mut values = Interner::new("nil");
    let mut entries = Vec::new();
    let val = |v: &Value, line: usize, values: &mut Interner| -> Result<u32, ParseError> {
        match v {
            Value::Nil => Ok(ABSENT),
            Value::Int(_) | Value::Str(_) => Ok(values.intern(&v.text())),
            other => Err(err(
                line,
                format!("expected a value, found {}", other.text()),
            )),
        }
    };
    for ((line, inv), done) in pair(events)? {
        let kind = done.as_ref().map_or(Kind::Info, |d| d.kind);
        let complete = done.as_ref().filter(|_| kind != Kind::Info).map(|d| d.time);
        let (input, output) = match (inv.f.as_str(), kind) {
            (_, Kind::Fail) if inv.f != ":cas" => continue,
            (":read", Kind::Info) => continue,
            (":read", _) => {
                let d = done.as_ref().expect("ok has a completion");
                (
                    Action::Read,
                    Reply::Value(val(&d.value, line, &mut values)?),
                )
            }
            (":write", _) => (
                Action::Write(val(&inv.value, line, &mut values)?),
                Reply::Ok,
            ),
            (":cas", _) => {
                let Value::Vec(pair) = &inv.value else {
                    return Err(err(line, "cas needs [expected new]"));
                };
                let [a, b] = pair.as_slice() else {
                    return Err(err(line, "cas needs [expected new]"));
                };
                let action = Action::Cas {
                    expect: val(a, line, &mut values)?,
                    new: val(b, line, &mut values)?,
                };
                let reply = if kind == Kind::Fail {
                    Reply::Mismatch
                } else {
                    Reply::Ok
                };
                (action, reply)
            }
            (f, _) => return Err(err(line, format!("unknown register function {f}"))),
        };
        entries.push(Entry {
            process: inv.process,
            invoke: inv.time,
            complete,
            input,
            output,
            source: line,
        });
    }
    Ok(RegisterHistory { values, entries })
}

/// Parse an EDN key-value history (`:get` / `:put` / `:append`).
///
/// # Errors
/// [`ParseError`] naming the first malformed, duplicate or unmatched line.
pub fn edn_kv(input: impl BufRead) -> Result<StrKvHistory, ParseError> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let no = i + 1;
        let line = line.map_err(|e| err(no, e.to_string()))?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        let mut p = EdnParser::new(trimmed);
        let map = p.map().map_err(|m| err(no, m))?;
        p.skip_ws();
        if !p.done() {
            return Err(err(no, "trailing text after the map"));
        }
        let get = |k: &str| map.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let process = match get(":process") {
            Some(Value::Int(p)) => u64::try_from(*p).map_err(|_| err(no, "negative :process"))?,
            Some(Value::Keyword(k)) if k == ":nemesis" => continue,
            _ => return Err(err(no, "missing or bad :process")),
        };
        let kind = match get(":type") {
            Some(Value::Keyword(k)) => {
                Kind::parse(k).ok_or_else(|| err(no, format!("unknown :type {k}")))?
            }
            _ => return Err(err(no, "missing :type")),
        };
        let f = match get(":f") {
            Some(Value::Keyword(k)) if matches!(k.as_str(), ":get" | ":put" | ":append") => {
                k.clone()
            }
            Some(v) => return Err(err(no, format!("unknown :f {}", v.text()))),
            None => return Err(err(no, "missing :f")),
        };
        let key = match get(":key") {
            Some(Value::Str(s)) => s.clone(),
            Some(Value::Int(i)) => i.to_string(),
            _ => return Err(err(no, "missing or bad :key")),
        };
        let value = get(":value").cloned().unwrap_or(Value::Nil);
        let time = match get(":time") {
            Some(Value::Int(t)) => u64::try_from(*t).map_err(|_| err(no, "negative :time"))?,
            Some(_) => return Err(err(no, "bad :time")),
            None => u64::try_from(no).unwrap_or(u64::MAX),
        };
        events.push((
            no,
            Event {
                process,
                kind,
                f,
                key: Some(key),
                value,
                time,
            },
        ));
    }
    let mut out = Vec::new();
    for ((line, inv), done) in pair(events)? {
        let kind = done.as_ref().map_or(Kind::Info, |d| d.kind);
        if kind == Kind::Fail {
            continue;
        }
        let complete = done.as_ref().filter(|_| kind != Kind::Info).map(|d| d.time);
        let key = inv.key.clone().expect("edn events have keys");
        let text = |v: &Value| match v {
            Value::Nil => String::new(),
            other => other.text(),
        };
        let (input, output) = match inv.f.as_str() {
            ":get" => {
                if kind == Kind::Info {
                    continue;
                }
                let d = done.as_ref().expect("ok has a completion");
                (StrInput::Get { key }, StrOutput::Value(text(&d.value)))
            }
            ":put" => (
                StrInput::Put {
                    key,
                    value: text(&inv.value),
                },
                StrOutput::Ok,
            ),
            _ => (
                StrInput::Append {
                    key,
                    value: text(&inv.value),
                },
                StrOutput::Ok,
            ),
        };
        out.push(Entry {
            process: inv.process,
            invoke: inv.time,
            complete,
            input,
            output,
            source: line,
        });
    }
    Ok(out)
}

/// A tiny reader for the EDN subset these logs use: maps, vectors, strings,
/// integers, keywords, `nil`.
struct EdnParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> EdnParser<'a> {
    fn new(s: &'a str) -> Self {
        EdnParser {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_whitespace() || self.s[self.i] == b',')
        {
            self.i += 1;
        }
    }

    fn map(&mut self) -> Result<Vec<(String, Value)>, String> {
        self.skip_ws();
        if self.s.get(self.i) != Some(&b'{') {
            return Err("expected a map {...}".into());
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b'}') => {
                    self.i += 1;
                    return Ok(out);
                }
                None => return Err("unterminated map".into()),
                _ => {}
            }
            let Value::Keyword(k) = self.value()? else {
                return Err("map keys must be keywords".into());
            };
            if out.iter().any(|(key, _)| *key == k) {
                return Err(format!("duplicate key {k}"));
            }
            let v = self.value()?;
            out.push((k, v));
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err("expected a value".into());
        };
        match c {
            b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err("unterminated string".into()),
                        Some(b'"') => {
                            self.i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let esc = self.s.get(self.i + 1).ok_or("unterminated string")?;
                            out.push(match esc {
                                b'n' => b'\n',
                                b't' => b'\t',
                                other => *other,
                            });
                            self.i += 2;
                        }
                        Some(&b) => {
                            out.push(b);
                            self.i += 1;
                        }
                    }
                }
                String::from_utf8(out)
                    .map(Value::Str)
                    .map_err(|_| "invalid UTF-8 in string".into())
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.skip_ws();
                    match self.s.get(self.i) {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Vec(v));
                        }
                        None => return Err("unterminated vector".into()),
                        _ => v.push(self.value()?),
                    }
                }
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && !self.s[self.i].is_ascii_whitespace()
                    && !matches!(self.s[self.i], b',' | b'}' | b']' | b'[' | b'{' | b'"')
                {
                    self.i += 1;
                }
                let tok =
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|_| "invalid UTF-8")?;
                if tok.is_empty() {
                    return Err(format!("unexpected character {:?}", char::from(c)));
                }
                if tok == "nil" {
                    Ok(Value::Nil)
                } else if tok.starts_with(':') {
                    Ok(Value::Keyword(tok.to_owned()))
                } else if let Ok(i) = tok.parse::<i64>() {
                    Ok(Value::Int(i))
                } else {
                    Err(format!("unrecognised value {tok:?}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jepsen_events_pair_up_with_their_meaning() {
        let log = "2017-03-08 12:00:00,123{GMT}\tINFO\t[jepsen worker 3] jepsen.util: 3\t:invoke\t:write\t4\n\
                   INFO  jepsen.util - 3\t:ok\t:write\t4\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                   INFO  jepsen.util - 1\t:invoke\t:cas\t[4 0]\n\
                   INFO  jepsen.util - 1\t:fail\t:cas\t[4 0]\n\
                   INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - 2\t:fail\t:read\t:timed-out\n\
                   INFO  jepsen.util - 5\t:invoke\t:write\t7\n\
                   INFO  jepsen.util - 5\t:info\t:write\t7\n\
                   INFO  jepsen.util - 6\t:invoke\t:read\tnil\n";
        let h = jepsen_register(log.as_bytes()).unwrap();
        let kinds: Vec<_> = h
            .entries
            .iter()
            .map(|e| (e.process, e.input, e.output, e.complete.is_some(), e.source))
            .collect();
        let v = |s: &str| h.values.get(s).unwrap();
        assert_eq!(
            kinds,
            vec![
                (3, Action::Write(v("4")), Reply::Ok, true, 1),
                // A failed compare is an observation: the value was not 4.
                (
                    1,
                    Action::Cas {
                        expect: v("4"),
                        new: v("0")
                    },
                    Reply::Mismatch,
                    true,
                    4
                ),
                // The timed-out read and the unanswered read constrain nothing.
                (5, Action::Write(v("7")), Reply::Ok, false, 8),
            ]
        );
    }

    #[test]
    fn malformed_jepsen_lines_are_named() {
        let bad_value = "INFO  jepsen.util - 3\t:invoke\t:write\t{oops\n";
        assert_eq!(jepsen_register(bad_value.as_bytes()).unwrap_err().line, 1);
        let bad_f =
            "INFO  jepsen.util - 3\t:invoke\t:write\t1\nINFO  jepsen.util - 3\t:ok\t:read\t1\n";
        let e = jepsen_register(bad_f.as_bytes()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("does not match"), "{e}");
    }

    #[test]
    fn edn_maps_become_string_kv_operations() {
        let log = "{:process 0, :type :invoke, :f :put, :key \"5\", :value \"a\", :time 10}\n\
                   {:process 0, :type :ok, :f :put, :key \"5\", :value \"a\", :time 20}\n\
                   {:process 1, :type :invoke, :f :append, :key \"5\", :value \"b\", :time 30}\n\
                   {:process 1, :type :fail, :f :append, :key \"5\", :value \"b\", :time 40}\n\
                   {:process 2, :type :invoke, :f :get, :key 5, :value nil, :time 50}\n\
                   {:process 2, :type :ok, :f :get, :key 5, :value \"a\", :time 60}\n";
        let h = edn_kv(log.as_bytes()).unwrap();
        assert_eq!(h.len(), 2, "the failed append did not happen");
        assert_eq!((h[0].invoke, h[0].complete), (10, Some(20)));
        assert_eq!(
            h[1].output,
            StrOutput::Value("a".into()),
            "integer keys are read as strings"
        );
        assert_eq!(h[1].input.key(), "5");
        let dup = "{:process 0, :process 1, :type :invoke, :f :get, :key \"5\"}\n";
        assert!(
            edn_kv(dup.as_bytes())
                .unwrap_err()
                .message
                .contains("duplicate")
        );
    }
}
