//! Outcome rules: how an adapter reads a store's answer.
//!
//! Real stores say "not found" in many ways (git config: exit 1 for `--get`, exit 5
//! for `--unset`; sqlite3: exit 0 and nothing on stdout; Python CLIs: exit 1 with an
//! empty stderr, where a traceback on exit 1 means something else). So each
//! operation has an ordered list of rules; each rule ANDs a few matchers on the exit
//! code, standard output and standard error, and the first rule that matches names
//! the outcome. The older shorthands (`[not_found]`, `fail_exit_codes`,
//! `damaged_exit_codes`) are rules too, tried after the explicit ones.

use std::fmt;

use clobber_check::history::Op;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// What a store's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// It happened (`get`: the value is standard output).
    Ok,
    /// `get`/`delete`: the key was absent.
    NotFound,
    /// The store refused: the operation definitely did not happen.
    Fail,
    /// The store file is damaged: a correct store never shows this (a violation).
    Damaged,
    /// It may or may not have happened.
    Unknown,
}

impl Answer {
    /// The name used in adapter files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Answer::Ok => "ok",
            Answer::NotFound => "not_found",
            Answer::Fail => "fail",
            Answer::Damaged => "damaged",
            Answer::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A regular expression kept with its source (so an adapter can be sent to workers).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    source: String,
    re: Regex,
}

impl Pattern {
    /// True if the expression matches somewhere in `text`.
    #[must_use]
    pub fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text)
    }

    /// The first capture group (or the whole match) of `text`.
    #[must_use]
    pub fn capture<'t>(&self, text: &'t str) -> Option<&'t str> {
        let c = self.re.captures(text)?;
        c.get(1).or_else(|| c.get(0)).map(|m| m.as_str())
    }
}

impl TryFrom<String> for Pattern {
    type Error = regex::Error;
    fn try_from(source: String) -> Result<Self, regex::Error> {
        let re = Regex::new(&source)?;
        Ok(Self { source, re })
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.source
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// `stdout = "empty"` or `"nonempty"` (after trimming white space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emptiness {
    /// Nothing but white space.
    Empty,
    /// Something besides white space.
    Nonempty,
}

/// One exit code or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExitCodes {
    /// One code.
    One(i32),
    /// Any of these.
    Any(Vec<i32>),
}

impl ExitCodes {
    fn contains(&self, code: i32) -> bool {
        match self {
            ExitCodes::One(c) => *c == code,
            ExitCodes::Any(cs) => cs.contains(&code),
        }
    }
}

/// One rule: every matcher given must match; then the answer is `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The exit code (any code if absent; a store killed by a signal never matches).
    #[serde(default)]
    pub exit: Option<ExitCodes>,
    /// Standard output is empty or not (after trimming white space).
    #[serde(default)]
    pub stdout: Option<Emptiness>,
    /// Standard output contains this text.
    #[serde(default)]
    pub stdout_contains: Option<String>,
    /// Standard output matches this regular expression.
    #[serde(default)]
    pub stdout_regex: Option<Pattern>,
    /// Standard error is empty or not (after trimming white space).
    #[serde(default)]
    pub stderr: Option<Emptiness>,
    /// Standard error contains this text.
    #[serde(default)]
    pub stderr_contains: Option<String>,
    /// Standard error matches this regular expression.
    #[serde(default)]
    pub stderr_regex: Option<Pattern>,
    /// What the answer means.
    pub outcome: Answer,
}

fn emptiness_matches(want: Option<Emptiness>, text: &str) -> bool {
    match want {
        None => true,
        Some(Emptiness::Empty) => text.trim().is_empty(),
        Some(Emptiness::Nonempty) => !text.trim().is_empty(),
    }
}

impl Rule {
    /// True if every matcher of the rule matches this answer.
    #[must_use]
    pub fn matches(&self, code: i32, stdout: &str, stderr: &str) -> bool {
        self.exit.as_ref().is_none_or(|e| e.contains(code))
            && emptiness_matches(self.stdout, stdout)
            && emptiness_matches(self.stderr, stderr)
            && self
                .stdout_contains
                .as_deref()
                .is_none_or(|t| stdout.contains(t))
            && self
                .stderr_contains
                .as_deref()
                .is_none_or(|t| stderr.contains(t))
            && self
                .stdout_regex
                .as_ref()
                .is_none_or(|p| p.is_match(stdout))
            && self
                .stderr_regex
                .as_ref()
                .is_none_or(|p| p.is_match(stderr))
    }

    /// Why `outcome` cannot follow `op`, if it cannot.
    #[must_use]
    pub fn invalid_for(&self, op: Op) -> Option<String> {
        (self.outcome == Answer::NotFound && !matches!(op, Op::Get | Op::Delete))
            .then(|| format!("outcome `not_found` is only for `get` and `delete`, not `{op}`"))
    }
}

/// The rules of every operation, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// `get`.
    #[serde(default)]
    pub get: Vec<Rule>,
    /// `set`.
    #[serde(default)]
    pub set: Vec<Rule>,
    /// `delete`.
    #[serde(default)]
    pub delete: Vec<Rule>,
    /// `list`.
    #[serde(default)]
    pub list: Vec<Rule>,
    /// `clear`.
    #[serde(default)]
    pub clear: Vec<Rule>,
}

impl Rules {
    /// The rules of `op`.
    #[must_use]
    pub fn of(&self, op: Op) -> &[Rule] {
        match op {
            Op::Get => &self.get,
            Op::Set => &self.set,
            Op::Delete => &self.delete,
            Op::List => &self.list,
            Op::Clear => &self.clear,
        }
    }

    /// The rules of `op`, to extend.
    pub fn of_mut(&mut self, op: Op) -> &mut Vec<Rule> {
        match op {
            Op::Get => &mut self.get,
            Op::Set => &mut self.set,
            Op::Delete => &mut self.delete,
            Op::List => &mut self.list,
            Op::Clear => &mut self.clear,
        }
    }

    /// The first rule of `op` that matches, if any.
    #[must_use]
    pub fn first_match(&self, op: Op, code: i32, stdout: &str, stderr: &str) -> Option<Answer> {
        self.of(op)
            .iter()
            .find(|r| r.matches(code, stdout, stderr))
            .map(|r| r.outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Rule {
        toml::from_str(toml_text).unwrap()
    }

    // One test per matcher kind, each with the real store that needs it.

    #[test]
    fn exit_code_matcher_tells_git_config_get_from_unset() {
        // git config --get: exit 1 for a missing key; --unset: exit 5.
        let get = rule("exit = 1\noutcome = \"not_found\"");
        let unset = rule("exit = [5]\noutcome = \"not_found\"");
        assert!(get.matches(1, "", "") && !get.matches(5, "", ""));
        assert!(unset.matches(5, "", "") && !unset.matches(1, "", ""));
    }

    #[test]
    fn empty_stdout_matcher_reads_sqlite3_no_row_as_not_found() {
        // sqlite3 "select v ... where k = ..." prints nothing (exit 0) for no row.
        let r = rule("exit = 0\nstdout = \"empty\"\noutcome = \"not_found\"");
        assert!(r.matches(0, "", ""));
        assert!(r.matches(0, "\n", ""));
        assert!(!r.matches(0, "v1\n", ""));
        let r = rule("stdout = \"nonempty\"\noutcome = \"ok\"");
        assert!(r.matches(0, "v1\n", "") && !r.matches(0, " \n", ""));
    }

    #[test]
    fn empty_stderr_matcher_tells_python_not_found_from_a_traceback() {
        // keyring get: exit 1 and nothing on stderr is "no such password"; exit 1
        // with a traceback is something else.
        let r = rule("exit = 1\nstderr = \"empty\"\noutcome = \"not_found\"");
        assert!(r.matches(1, "", ""));
        assert!(!r.matches(1, "", "Traceback (most recent call last):\n ..."));
    }

    #[test]
    fn stderr_substring_matcher_reads_crudini_unchanged() {
        // crudini --verbose --del: exit 0 either way; "unchanged:" if the key was absent.
        let r = rule("exit = 0\nstderr_contains = \"unchanged:\"\noutcome = \"not_found\"");
        assert!(r.matches(0, "", "unchanged: --del f s k"));
        assert!(!r.matches(0, "", "changed: --del f s k"));
    }

    #[test]
    fn stdout_substring_matcher() {
        let r = rule("stdout_contains = \"0 rows\"\noutcome = \"not_found\"");
        assert!(r.matches(0, "deleted 0 rows\n", "") && !r.matches(0, "deleted 1 rows", ""));
    }

    #[test]
    fn stdout_regex_matcher_reads_sqlite3_changes() {
        // sqlite3 "delete ...; select changes();" prints 0 when nothing was deleted.
        let r = rule("stdout_regex = '^0\\s*$'\noutcome = \"not_found\"");
        assert!(r.matches(0, "0\n", ""));
        assert!(!r.matches(0, "1\n", "") && !r.matches(0, "10\n", ""));
    }

    #[test]
    fn stderr_regex_matcher_reads_a_corrupt_file_traceback_as_damaged() {
        // A configparser traceback on a torn ini file: the store file is damaged.
        let r = rule(
            "exit = 1\nstderr_regex = '(ParsingError|MissingSectionHeaderError)'\noutcome = \"damaged\"",
        );
        assert!(r.matches(
            1,
            "",
            "configparser.MissingSectionHeaderError: File contains no section headers."
        ));
        assert!(!r.matches(1, "", "PasswordDeleteError: Password not found"));
    }

    #[test]
    fn first_matching_rule_wins_and_bad_regex_is_rejected() {
        let rules: Rules = toml::from_str(
            "[[get]]\nexit = 1\nstderr = \"empty\"\noutcome = \"not_found\"\n\
             [[get]]\nexit = 1\noutcome = \"damaged\"\n",
        )
        .unwrap();
        assert_eq!(
            rules.first_match(Op::Get, 1, "", ""),
            Some(Answer::NotFound)
        );
        assert_eq!(
            rules.first_match(Op::Get, 1, "", "boom"),
            Some(Answer::Damaged)
        );
        assert_eq!(rules.first_match(Op::Get, 2, "", ""), None);
        assert_eq!(rules.first_match(Op::Set, 1, "", ""), None);
        assert!(toml::from_str::<Rule>("stderr_regex = '('\noutcome = \"ok\"").is_err());
        assert!(
            rule("outcome = \"not_found\"")
                .invalid_for(Op::Set)
                .is_some()
        );
    }
}
