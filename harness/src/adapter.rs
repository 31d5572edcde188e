//! Adapters: how to drive a store's command line (`adapters/*.toml`).
//!
//! The harness drives every store through one: argv templates for each operation
//! ([`argv`]), how the value is passed, how to read each answer ([`outcome`]: rules
//! on the exit code, standard output and standard error), how keys are encoded, what
//! the store can do (an atomic `clear`, a `list`), and the environment that isolates
//! the store in the run's scratch directory. Everything a user needs to fit a real
//! store is here, so that no wrapper script is needed where the store has a CLI. The
//! schema is documented in `adapters/README.md`.
//!
//! `--store` takes an adapter file or a built-in name: `reference` (the reference
//! store, `clobber-store`, with cheap KDF parameters) and `reference:<fault>` for
//! each of its faulty protocols.

pub mod argv;
pub mod lifecycle;
pub mod outcome;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clobber_check::history::Op;
use clobber_store::Protocol;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result, line_of};
use crate::scenario::{Scenario, Step};
pub use argv::{Piece, Template};
pub use outcome::{Answer, Pattern, Rule, Rules};

/// The reference store's adapter, as shipped in `adapters/clobber-store.toml`.
pub const REFERENCE_TOML: &str = include_str!("../../adapters/clobber-store.toml");

/// How `set` passes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueVia {
    /// On standard input, followed by one newline.
    Stdin,
    /// As the `{value}` argument.
    Argument,
}

/// How keys are written for the store (and read back from its `list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyEncoding {
    /// As they are.
    #[default]
    Plain,
    /// Lower-case hex of the UTF-8 bytes: for stores that fold case or only take
    /// `[a-z0-9]` names.
    Hex,
    /// URL-safe base64 without padding (`A-Z a-z 0-9 - _`).
    Base64url,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl KeyEncoding {
    /// The key as the store sees it.
    #[must_use]
    pub fn encode(self, key: &str) -> String {
        match self {
            KeyEncoding::Plain => key.to_owned(),
            KeyEncoding::Hex => key.bytes().map(|b| format!("{b:02x}")).collect(),
            KeyEncoding::Base64url => {
                let mut out = String::new();
                for chunk in key.as_bytes().chunks(3) {
                    let n = chunk
                        .iter()
                        .enumerate()
                        .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
                    for i in 0..=chunk.len() {
                        out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
                    }
                }
                out
            }
        }
    }

    /// The key a store's name stands for, or `None` if it is not an encoded name.
    #[must_use]
    pub fn decode(self, name: &str) -> Option<String> {
        let bytes = match self {
            KeyEncoding::Plain => return Some(name.to_owned()),
            KeyEncoding::Hex => {
                if !name.len().is_multiple_of(2) {
                    return None;
                }
                (0..name.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?
            }
            KeyEncoding::Base64url => {
                let digits = name
                    .bytes()
                    .map(|c| B64.iter().position(|&b| b == c).map(|p| p as u32))
                    .collect::<Option<Vec<u32>>>()?;
                if digits.len() % 4 == 1 {
                    return None;
                }
                let mut out = Vec::new();
                for chunk in digits.chunks(4) {
                    let n = chunk
                        .iter()
                        .enumerate()
                        .fold(0u32, |n, (i, &d)| n | (d << (18 - 6 * i)));
                    for i in 0..chunk.len() - 1 {
                        out.push(((n >> (16 - 8 * i)) & 0xff) as u8);
                    }
                }
                out
            }
        };
        String::from_utf8(bytes).ok()
    }
}

/// Whether the store can do an operation that scenarios rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// One command does it atomically (`commands.<op>` is given).
    Atomic,
    /// The store cannot: scenarios that need it are refused (`run`) or skipped
    /// (`validate`).
    None,
}

/// How "not found" looks (the older shorthand for a `get`/`delete` rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotFound {
    /// The exit code of a `get`/`delete` of a missing key.
    pub exit_code: i32,
    /// Text that standard error must contain too (if given).
    #[serde(default)]
    pub stderr_contains: Option<String>,
}

/// One variable of a store process's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvValue {
    /// Set to this (`{scratch}` filled in at run time).
    Set(Template),
    /// Removed from the environment the store inherits.
    Unset,
}

/// A resolved adapter, ready to run (and to hand to worker processes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adapter {
    /// Its name.
    pub name: String,
    /// Where it came from (a file, or `built-in`).
    pub source: String,
    /// The resolved program, substituted for `{program}`.
    pub program: Option<PathBuf>,
    /// The program as the adapter names it.
    pub program_name: String,
    /// Where the program was looked for, in order (for the "not found" error).
    pub program_tried: Vec<PathBuf>,
    /// The variable that chose the program (`program_env`), if it was set.
    pub program_from_env: Option<String>,
    /// How `set` passes the value.
    pub value: ValueVia,
    /// How keys are encoded for the store.
    pub key_encoding: KeyEncoding,
    /// Whether `clear` is atomic or missing.
    pub clear: Capability,
    /// Whether `list` is available.
    pub list: Capability,
    /// `list`: a regular expression whose first group is the key on each line (lines
    /// that do not match are not keys). Without it every non-blank line is a key.
    pub list_key: Option<Pattern>,
    /// Environment changes, in file order.
    pub env: Vec<(String, EnvValue)>,
    /// argv templates, by operation name (`set`, `get`, `delete`, `list`, `clear`,
    /// `integrity`).
    pub commands: BTreeMap<String, Vec<Template>>,
    /// Commands run in order before the run; each must exit 0.
    pub setup: Vec<Vec<Template>>,
    /// Commands run after the run, on every exit path (errors are reported, not fatal).
    pub teardown: Vec<Vec<Template>>,
    /// Outcome rules per operation, tried first.
    pub outcomes: Rules,
    /// How "not found" looks (shorthand), tried after `outcomes`.
    pub not_found: Option<NotFound>,
    /// Exit codes that are definite failures (the operation did not happen).
    pub fail_exit_codes: Vec<i32>,
    /// Exit codes that mean the store file is damaged: always a violation.
    pub damaged_exit_codes: Vec<i32>,
    /// For the built-in reference store: the protocol it runs.
    #[serde(skip)]
    pub reference: Option<Protocol>,
    /// The variable that overrides where the program is found (`program_env`).
    #[serde(default)]
    pub program_env: Option<String>,
}

/// The reference store's variables that a run must never inherit: a key file
/// would replace the scratch passphrase, a test barrier would make the store pause
/// and write outside the run's directory.
const REFERENCE_NEVER_INHERITED: [&str; 2] =
    ["CLOBBER_STORE_KEY_FILE", "CLOBBER_STORE_TEST_BARRIER"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    program: String,
    #[serde(default)]
    program_env: Option<String>,
    value: ValueVia,
    #[serde(default)]
    key_encoding: KeyEncoding,
    #[serde(default)]
    clear: Option<Spanned<Capability>>,
    #[serde(default)]
    list: Option<Spanned<Capability>>,
    #[serde(default)]
    list_key: Option<Pattern>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<EnvFile>>,
    commands: Commands,
    #[serde(default)]
    outcomes: Option<Spanned<Rules>>,
    #[serde(default)]
    not_found: Option<NotFound>,
    #[serde(default)]
    fail_exit_codes: Vec<i32>,
    #[serde(default)]
    damaged_exit_codes: Vec<i32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EnvFile {
    Set(String),
    Edit(EnvEdit),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvEdit {
    #[serde(default)]
    prepend: Option<String>,
    #[serde(default)]
    append: Option<String>,
    #[serde(default)]
    separator: Option<String>,
    #[serde(default)]
    unset: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CommandList {
    Many(Vec<Vec<String>>),
    One(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Commands {
    setup: Option<Spanned<CommandList>>,
    teardown: Option<Spanned<CommandList>>,
    set: Spanned<Vec<String>>,
    get: Spanned<Vec<String>>,
    delete: Spanned<Vec<String>>,
    list: Option<Spanned<Vec<String>>>,
    clear: Option<Spanned<Vec<String>>>,
    integrity: Option<Spanned<Vec<String>>>,
}

impl Adapter {
    /// Resolve `--store`: a built-in name (`reference`, `reference:<fault>`) or an
    /// adapter file.
    ///
    /// # Errors
    /// Unknown built-in, unreadable or malformed file.
    pub fn resolve(spec: &str) -> Result<Self> {
        if let Some(rest) = spec.strip_prefix("reference") {
            let protocol = match rest {
                "" => Protocol::Correct,
                r if r.starts_with(':') => r[1..]
                    .parse::<Protocol>()
                    .map_err(|e| Error::usage(format!("--store {spec}: {e}")))?,
                _ => return Self::from_file(Path::new(spec)),
            };
            let mut a = Self::parse(
                Path::new("adapters/clobber-store.toml"),
                REFERENCE_TOML,
                None,
            )?;
            a.source = "built-in".into();
            a.name = if protocol.is_faulty() {
                format!("reference:{protocol}")
            } else {
                "reference".into()
            };
            // Always set: empty is the correct protocol, so a variable left in the
            // caller's environment cannot turn `reference` faulty.
            let name = if protocol.is_faulty() {
                protocol.name()
            } else {
                ""
            };
            a.set_env("CLOBBER_STORE_UNSAFE_PROTOCOL", name);
            a.reference = Some(protocol);
            let program_env = a.program_env.clone().unwrap_or_default();
            let mut remove: std::collections::BTreeSet<String> = REFERENCE_NEVER_INHERITED
                .iter()
                .map(|v| (*v).to_owned())
                .collect();
            remove.extend(
                std::env::vars_os()
                    .filter_map(|(k, _)| k.into_string().ok())
                    .filter(|k| k.starts_with("CLOBBER_STORE_") && *k != program_env),
            );
            // Inherited values that would change what the store does are removed.
            for k in remove {
                if !a.env.iter().any(|(n, _)| *n == k) {
                    a.env.push((k, EnvValue::Unset));
                }
            }
            return Ok(a);
        }
        Self::from_file(Path::new(spec))
    }

    /// Load an adapter file.
    ///
    /// # Errors
    /// Unreadable or malformed file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                let faults: Vec<&str> = Protocol::FAULTS.iter().map(|p| p.name()).collect();
                Error::usage(format!(
                    "--store {}: not a built-in store and no such adapter file. Built-in \
                     stores: reference, reference:<fault> with <fault> one of {}. Shipped \
                     adapters (paths from the repository root): adapters/clobber-store.toml, \
                     adapters/thv.toml; adapters/README.md describes the format",
                    path.display(),
                    faults.join(", ")
                ))
            } else {
                Error::io("read adapter", path, e)
            }
        })?;
        Self::parse(path, &text, path.parent())
    }

    /// Parse adapter text, with `${VAR}` taken from clobber's environment. Relative
    /// program paths and `{adapter_dir}` are taken from `dir`.
    ///
    /// # Errors
    /// Configuration errors naming the file, line and field.
    pub fn parse(path: &Path, text: &str, dir: Option<&Path>) -> Result<Self> {
        Self::parse_with_env(path, text, dir, &|n| std::env::var(n).ok())
    }

    /// [`Adapter::parse`] with the environment given by `env`.
    ///
    /// # Errors
    /// Configuration errors naming the file, line and field.
    #[allow(clippy::too_many_lines)]
    pub fn parse_with_env(
        path: &Path,
        text: &str,
        dir: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let file: AdapterFile =
            toml::from_str(text).map_err(|e| crate::error::toml_error(path, text, &e))?;
        let _ = file.description;
        let dir = dir.map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        });
        let cfg = |span: std::ops::Range<usize>, msg: String| {
            Error::config(path, Some(line_of(text, span.start)), msg)
        };
        let cx = |allowed: &'static [&'static str]| argv::Context {
            adapter_dir: dir,
            env,
            allowed,
        };
        let parse_argv = |field: &str,
                          argv: &[String],
                          span: &std::ops::Range<usize>,
                          allowed: &'static [&'static str]|
         -> Result<Vec<Template>> {
            if argv.is_empty() {
                return Err(cfg(span.clone(), format!("field `{field}` is empty")));
            }
            let mut out = argv
                .iter()
                .map(|a| {
                    Template::parse(a, &cx(allowed))
                        .map_err(|m| cfg(span.clone(), format!("field `{field}`: {m}")))
                })
                .collect::<Result<Vec<_>>>()?;
            // A bare program name next to the adapter file wins over PATH.
            if let (Some(d), Some(name)) = (dir, out[0].literal())
                && !name.contains('/')
                && !name.is_empty()
                && d.join(&name).is_file()
            {
                out[0] = Template(vec![Piece::Lit(d.join(&name).display().to_string())]);
            }
            Ok(out)
        };
        const ANY: &[&str] = &["program", "scratch"];
        const KEYED: &[&str] = &["program", "key", "scratch"];
        const SET_ARG: &[&str] = &["program", "key", "value", "scratch"];

        let c = file.commands;
        let mut commands = BTreeMap::new();
        let entries = [
            ("set", Some(c.set)),
            ("get", Some(c.get)),
            ("delete", Some(c.delete)),
            ("list", c.list),
            ("clear", c.clear),
            ("integrity", c.integrity),
        ];
        for (name, argv) in entries {
            let Some(argv) = argv else { continue };
            let span = argv.span();
            let field = format!("commands.{name}");
            let keyed = matches!(name, "set" | "get" | "delete");
            let by_arg = name == "set" && file.value == ValueVia::Argument;
            let allowed = match (keyed, by_arg) {
                (_, true) => SET_ARG,
                (true, false) => KEYED,
                (false, false) => ANY,
            };
            let argv = parse_argv(&field, argv.get_ref(), &span, allowed).map_err(|e| {
                // Say why {key} or {value} is not allowed here.
                let m = e.to_string();
                if m.contains("{key}") && !keyed {
                    cfg(span.clone(), format!("field `{field}` cannot use {{key}}"))
                } else if m.contains("{value}") && !by_arg {
                    cfg(
                        span.clone(),
                        format!(
                            "field `{field}` cannot use {{value}} (only `set` with value = \"argument\")"
                        ),
                    )
                } else {
                    e
                }
            })?;
            if keyed && !argv.iter().any(|t| t.uses(&Piece::Key)) {
                return Err(cfg(span, format!("field `{field}` must contain {{key}}")));
            }
            if by_arg && !argv.iter().any(|t| t.uses(&Piece::Value)) {
                return Err(cfg(
                    span,
                    format!("field `{field}` must contain {{value}} (value = \"argument\")"),
                ));
            }
            commands.insert(name.to_owned(), argv);
        }
        let lists = |name: &str, l: Option<Spanned<CommandList>>| -> Result<Vec<Vec<Template>>> {
            let Some(l) = l else { return Ok(Vec::new()) };
            let span = l.span();
            let many = match l.into_inner() {
                CommandList::One(argv) => vec![argv],
                CommandList::Many(v) => v,
            };
            many.iter()
                .enumerate()
                .map(|(i, argv)| parse_argv(&format!("commands.{name}[{i}]"), argv, &span, ANY))
                .collect()
        };
        let setup = lists("setup", c.setup)?;
        let teardown = lists("teardown", c.teardown)?;

        let capability = |name: &str, given: Option<Spanned<Capability>>| -> Result<Capability> {
            let has = commands.contains_key(name);
            match given {
                None => Ok(if has {
                    Capability::Atomic
                } else {
                    Capability::None
                }),
                Some(g) => match (*g.get_ref(), has) {
                    (Capability::Atomic, false) => Err(cfg(
                        g.span(),
                        format!("field `{name}` is \"atomic\" but there is no `commands.{name}`"),
                    )),
                    (Capability::None, true) => Err(cfg(
                        g.span(),
                        format!(
                            "field `{name}` is \"none\" but `commands.{name}` is given: remove one"
                        ),
                    )),
                    (c, _) => Ok(c),
                },
            }
        };
        let clear = capability("clear", file.clear)?;
        let list = capability("list", file.list)?;

        let mut env_out = Vec::new();
        for (k, v) in file.env {
            let span = v.span();
            let t = |s: &str| {
                Template::parse(s, &cx(&["scratch"])).map_err(|m| {
                    cfg(span.clone(), format!("field `env.{k}`: {m} (env may use {{scratch}}, {{adapter_dir}} and ${{VAR}})"))
                })
            };
            let value = match v.into_inner() {
                EnvFile::Set(s) => EnvValue::Set(t(&s)?),
                EnvFile::Edit(e) => {
                    let edits = usize::from(e.unset)
                        + usize::from(e.prepend.is_some() || e.append.is_some());
                    if edits != 1 {
                        return Err(cfg(
                            span,
                            format!(
                                "field `env.{k}`: give `prepend` and/or `append`, or `unset = true`"
                            ),
                        ));
                    }
                    if e.unset {
                        EnvValue::Unset
                    } else {
                        let sep = e.separator.as_deref().unwrap_or(":");
                        let current = env(&k).filter(|c| !c.is_empty());
                        let mut pieces = Vec::new();
                        let mut parts = Vec::new();
                        if let Some(p) = &e.prepend {
                            parts.push(t(p)?.0);
                        }
                        if let Some(c) = current {
                            parts.push(vec![Piece::Lit(c)]);
                        }
                        if let Some(a) = &e.append {
                            parts.push(t(a)?.0);
                        }
                        for (i, p) in parts.into_iter().enumerate() {
                            if i > 0 {
                                pieces.push(Piece::Lit(sep.to_owned()));
                            }
                            pieces.extend(p);
                        }
                        EnvValue::Set(Template(pieces))
                    }
                }
            };
            env_out.push((k, value));
        }

        let outcomes = match file.outcomes {
            None => Rules::default(),
            Some(r) => {
                let span = r.span();
                let r = r.into_inner();
                for op in [Op::Get, Op::Set, Op::Delete, Op::List, Op::Clear] {
                    if let Some(m) = r.of(op).iter().find_map(|rule| rule.invalid_for(op)) {
                        return Err(cfg(span, format!("field `outcomes.{op}`: {m}")));
                    }
                }
                r
            }
        };

        let program_text = Template::parse(&file.program, &cx(&[]))
            .map_err(|m| Error::config(path, None, format!("field `program`: {m}")))?
            .literal()
            .unwrap_or_default();
        let store_path = env_out
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| match v {
                EnvValue::Set(t) => Some(t.render("", "", "", "")),
                EnvValue::Unset => None,
            });
        let store_path = match store_path {
            Some(p) => p,
            None => env("PATH"),
        };
        let found = find_program(
            &program_text,
            file.program_env.as_deref(),
            dir,
            store_path.as_deref(),
            env,
        );
        Ok(Self {
            name: file.name,
            source: path.display().to_string(),
            program: found.path,
            program_name: program_text,
            program_tried: found.tried,
            program_from_env: found.from_env,
            value: file.value,
            key_encoding: file.key_encoding,
            clear,
            list,
            list_key: file.list_key,
            env: env_out,
            commands,
            setup,
            teardown,
            outcomes,
            not_found: file.not_found,
            fail_exit_codes: file.fail_exit_codes,
            damaged_exit_codes: file.damaged_exit_codes,
            reference: None,
            program_env: file.program_env.clone(),
        })
    }

    fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((
            key.to_owned(),
            EnvValue::Set(Template(vec![Piece::Lit(value.to_owned())])),
        ));
    }

    /// The value this adapter sets for `key`, with `{scratch}` empty (None if it
    /// does not set it).
    #[must_use]
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                EnvValue::Set(t) => Some(t.render("", "", "", "")),
                EnvValue::Unset => None,
            })
    }

    /// The resolved program, or a setup error naming exactly where it was looked for.
    ///
    /// # Errors
    /// The program was not found.
    pub fn require_program(&self) -> Result<&Path> {
        self.program.as_deref().ok_or_else(|| {
            let what = format!(
                "store program `{}` of adapter {} ({}) not found",
                self.program_name, self.name, self.source
            );
            if let Some(var) = &self.program_from_env {
                let p = self.program_tried.first().map(|p| p.display().to_string());
                return Error::setup(format!(
                    "{what}: {var}={} is not a file",
                    p.unwrap_or_default()
                ));
            }
            let tried: Vec<String> = self
                .program_tried
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            Error::setup(format!(
                "{what}; tried: {}{}",
                tried.join(", "),
                if self.reference.is_some() {
                    "; build it with `cargo build -p clobber-store` or set CLOBBER_STORE_BIN"
                } else {
                    ""
                }
            ))
        })
    }

    fn render(
        &self,
        t: &[Template],
        key: Option<&str>,
        value: Option<&str>,
        scratch: &Path,
    ) -> Vec<String> {
        let program = self
            .program
            .as_ref()
            .map_or_else(|| self.program_name.clone(), |p| p.display().to_string());
        let key = key.map(|k| self.key_encoding.encode(k)).unwrap_or_default();
        let scratch = scratch.display().to_string();
        t.iter()
            .map(|a| a.render(&program, &key, value.unwrap_or(""), &scratch))
            .collect()
    }

    /// The argv for `command` (an operation or `integrity`) on `key` (encoded as
    /// `key_encoding` says) with `value`, or `None` if the adapter has no such command.
    #[must_use]
    pub fn argv(
        &self,
        command: &str,
        key: Option<&str>,
        value: Option<&str>,
        scratch: &Path,
    ) -> Option<Vec<String>> {
        let template = self.commands.get(command)?;
        Some(self.render(template, key, value, scratch))
    }

    /// The `setup` commands, in order.
    #[must_use]
    pub fn setup_argvs(&self, scratch: &Path) -> Vec<Vec<String>> {
        self.setup
            .iter()
            .map(|t| self.render(t, None, None, scratch))
            .collect()
    }

    /// The `teardown` commands, in order.
    #[must_use]
    pub fn teardown_argvs(&self, scratch: &Path) -> Vec<Vec<String>> {
        self.teardown
            .iter()
            .map(|t| self.render(t, None, None, scratch))
            .collect()
    }

    /// The variables this adapter sets, with `{scratch}` filled in (see also
    /// [`Adapter::apply_env`], which unsets too).
    #[must_use]
    pub fn env_for(&self, scratch: &Path) -> Vec<(String, String)> {
        let s = scratch.display().to_string();
        self.env
            .iter()
            .filter_map(|(k, v)| match v {
                EnvValue::Set(t) => Some((k.clone(), t.render("", "", "", &s))),
                EnvValue::Unset => None,
            })
            .collect()
    }

    /// The variables this adapter removes from the store's environment.
    #[must_use]
    pub fn env_removed(&self) -> Vec<String> {
        self.env
            .iter()
            .filter(|(_, v)| *v == EnvValue::Unset)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// True if `[env]` sets or removes `key` (the store does not inherit it).
    #[must_use]
    pub fn env_overrides(&self, key: &str) -> bool {
        self.env.iter().any(|(k, _)| k == key)
    }

    /// Apply `[env]` to a store command: set, prepend/append and unset.
    pub fn apply_env(&self, cmd: &mut Command, scratch: &Path) {
        let s = scratch.display().to_string();
        for (k, v) in &self.env {
            match v {
                EnvValue::Set(t) => {
                    cmd.env(k, t.render("", "", "", &s));
                }
                EnvValue::Unset => {
                    cmd.env_remove(k);
                }
            }
        }
    }

    /// A store command for `argv`, with `[env]` applied.
    #[must_use]
    pub fn command(&self, argv: &[String], scratch: &Path) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        self.apply_env(&mut cmd, scratch);
        cmd
    }

    /// True if the adapter can run `op`.
    #[must_use]
    pub fn supports(&self, op: Op) -> bool {
        match op {
            Op::Clear => self.clear == Capability::Atomic,
            Op::List => self.list == Capability::Atomic,
            _ => self.commands.contains_key(op.name()),
        }
    }

    /// Why this store cannot run `scenario` (a capability it lacks), in one line; `None`
    /// if it can. `clobber run` refuses such a scenario (exit 3) and `clobber validate`
    /// skips it, both with this line.
    #[must_use]
    pub fn missing_capability(&self, scenario: &Scenario) -> Option<String> {
        for role in &scenario.roles {
            for step in &role.steps {
                if let Step::Op { op, .. } = step
                    && !self.supports(*op)
                {
                    let how = match op {
                        Op::Clear | Op::List => format!("{op} = \"none\""),
                        _ => format!("no `commands.{op}`"),
                    };
                    return Some(format!(
                        "scenario {} needs `{op}` (role {:?}), which store {} lacks ({how} in {})",
                        scenario.name, role.name, self.name, self.source
                    ));
                }
            }
        }
        None
    }

    /// How a missing key looks, in words (for setup errors).
    #[must_use]
    pub fn describe_not_found(&self) -> String {
        let mut parts: Vec<String> = self
            .outcomes
            .get
            .iter()
            .filter(|r| r.outcome == Answer::NotFound)
            .map(|r| {
                toml::to_string(r)
                    .unwrap_or_default()
                    .replace('\n', " ")
                    .trim()
                    .to_owned()
            })
            .collect();
        if let Some(nf) = &self.not_found {
            parts.push(format!(
                "exit {}{}",
                nf.exit_code,
                nf.stderr_contains
                    .as_deref()
                    .map(|t| format!(" with {t:?} on stderr"))
                    .unwrap_or_default()
            ));
        }
        if parts.is_empty() {
            "no not-found rule for `get`".into()
        } else {
            parts.join(" or ")
        }
    }

    /// What an answer means: the operation's `outcomes` rules first (first match
    /// wins), then `[not_found]` (`get`/`delete`), then exit 0 is `ok`, then
    /// `damaged_exit_codes`, `fail_exit_codes`, and anything else is `unknown`.
    #[must_use]
    pub fn answer(&self, op: Op, code: i32, stdout: &str, stderr: &str) -> Answer {
        if let Some(a) = self.outcomes.first_match(op, code, stdout, stderr) {
            return a;
        }
        if matches!(op, Op::Get | Op::Delete)
            && let Some(nf) = &self.not_found
            && code == nf.exit_code
            && nf
                .stderr_contains
                .as_deref()
                .is_none_or(|t| stderr.contains(t))
        {
            return Answer::NotFound;
        }
        if code == 0 {
            Answer::Ok
        } else if self.damaged_exit_codes.contains(&code) {
            Answer::Damaged
        } else if self.fail_exit_codes.contains(&code) {
            Answer::Fail
        } else {
            Answer::Unknown
        }
    }

    /// The keys in a `list` answer: every non-blank line (or the first group of
    /// `list_key` on the lines it matches), decoded. A name that does not decode is
    /// kept as it is, so that a key nobody wrote still shows.
    #[must_use]
    pub fn list_keys(&self, stdout: &str) -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| match &self.list_key {
                Some(p) => p.capture(l),
                None => Some(l.trim()).filter(|l| !l.is_empty()),
            })
            .map(|name| {
                self.key_encoding
                    .decode(name)
                    .unwrap_or_else(|| name.to_owned())
            })
            .collect()
    }
}

struct Found {
    path: Option<PathBuf>,
    tried: Vec<PathBuf>,
    from_env: Option<String>,
}

/// Where the store program is: `program_env` if set (only there); a path with '/'
/// (relative to the adapter); a bare name next to the adapter, next to the clobber
/// executable, then on the store's PATH.
fn find_program(
    program: &str,
    program_env: Option<&str>,
    dir: Option<&Path>,
    path_var: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Found {
    let mut tried = Vec::new();
    let check = |p: PathBuf, tried: &mut Vec<PathBuf>| {
        let ok = p.is_file();
        tried.push(p.clone());
        ok.then_some(p)
    };
    if let Some(var) = program_env
        && let Some(p) = env(var).filter(|p| !p.is_empty())
    {
        let path = check(PathBuf::from(p), &mut tried);
        return Found {
            path,
            tried,
            from_env: Some(var.to_owned()),
        };
    }
    let found = |tried: &mut Vec<PathBuf>| -> Option<PathBuf> {
        if program.contains('/') {
            let p = Path::new(program);
            let p = match dir {
                Some(d) if p.is_relative() => d.join(p),
                _ => p.to_path_buf(),
            };
            return check(p, tried);
        }
        if let Some(d) = dir
            && let Some(p) = check(d.join(program), tried)
        {
            return Some(p);
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(d) = exe.parent()
        {
            for candidate in [d.join(program), d.join("..").join(program)] {
                if let Some(p) = check(candidate, tried) {
                    return Some(p);
                }
            }
        }
        let paths = path_var?;
        std::env::split_paths(paths).find_map(|d| check(d.join(program), tried))
    };
    let path = found(&mut tried);
    Found {
        path,
        tried,
        from_env: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"
name = "mini"
program = "mini-store"
value = "stdin"
[commands]
set = ["{program}", "set", "{key}"]
get = ["{program}", "get", "{key}"]
delete = ["{program}", "delete", "{key}"]
"#;

    fn env(n: &str) -> Option<String> {
        match n {
            "PATH" => Some("/usr/bin:/bin".into()),
            "TOOLS" => Some("/opt/tools".into()),
            "PYTHONPATH" => Some("/junk".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Adapter> {
        Adapter::parse_with_env(Path::new("x.toml"), text, Some(Path::new("/ad")), &env)
    }

    #[test]
    fn the_shipped_reference_adapter_parses() {
        let a = Adapter::parse(Path::new("clobber-store.toml"), REFERENCE_TOML, None).unwrap();
        assert_eq!(a.value, ValueVia::Stdin);
        assert_eq!(a.not_found.as_ref().map(|n| n.exit_code), Some(1));
        assert!(a.damaged_exit_codes.contains(&5));
        let argv = a.argv("get", Some("k"), None, Path::new("/s")).unwrap();
        assert_eq!(argv.last().map(String::as_str), Some("k"));
        assert_eq!(a.clear, Capability::Atomic);
        assert_eq!(a.setup_argvs(Path::new("/s")).len(), 1);
    }

    #[test]
    fn faulty_builtins_set_the_unsafe_protocol() {
        let a = Adapter::resolve("reference:stale-snapshot").unwrap();
        assert_eq!(a.reference, Some(Protocol::StaleSnapshot));
        assert_eq!(
            a.env_value("CLOBBER_STORE_UNSAFE_PROTOCOL").as_deref(),
            Some("stale-snapshot")
        );
        for fault in ["no-fsync", "no-dir-fsync"] {
            let a = Adapter::resolve(&format!("reference:{fault}")).unwrap();
            assert_eq!(a.name, format!("reference:{fault}"));
            assert_eq!(
                a.env_value("CLOBBER_STORE_UNSAFE_PROTOCOL").as_deref(),
                Some(fault)
            );
        }
        assert!(Adapter::resolve("reference:bogus").is_err());
        // An inherited CLOBBER_STORE_UNSAFE_PROTOCOL cannot make `reference` faulty.
        let correct = Adapter::resolve("reference").unwrap();
        assert_eq!(
            correct
                .env_value("CLOBBER_STORE_UNSAFE_PROTOCOL")
                .as_deref(),
            Some("")
        );
        assert_eq!(correct.reference, Some(Protocol::Correct));
    }

    #[test]
    fn malformed_adapter_names_file_line_and_field() {
        let text = REFERENCE_TOML.replace("[not_found]", "[not_found]\nexit_codez = 3");
        let e = Adapter::parse(Path::new("x.toml"), &text, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:"), "{e}");
        assert!(e.contains("exit_codez"), "{e}");
        let text = REFERENCE_TOML.replacen("\"{key}\"", "\"{kee}\"", 1);
        let e = Adapter::parse(Path::new("x.toml"), &text, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("{kee}") && e.contains("commands."), "{e}");
        let e = parse(&MINI.replace("\"list\"", "x").replace(
            "[commands]",
            "[commands]\nlist = [\"{program}\", \"{key}\"]",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("commands.list") && e.contains("cannot use {key}"),
            "{e}"
        );
    }

    #[test]
    fn key_encodings_round_trip_and_are_store_safe() {
        for key in [
            "k",
            "OAUTH_REFRESH_TOKEN_w1_123_abcdef01",
            "my-secret-1",
            "ab",
            "abc",
            "é/x y",
        ] {
            for enc in [KeyEncoding::Plain, KeyEncoding::Hex, KeyEncoding::Base64url] {
                let e = enc.encode(key);
                assert_eq!(
                    enc.decode(&e).as_deref(),
                    Some(key),
                    "{enc:?} {key:?} -> {e}"
                );
            }
            let h = KeyEncoding::Hex.encode(key);
            assert!(
                h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            let b = KeyEncoding::Base64url.encode(key);
            assert!(
                b.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert_eq!(KeyEncoding::Hex.encode("Ab"), "4162");
        assert_eq!(KeyEncoding::Base64url.encode("abc"), "YWJj");
        assert_eq!(KeyEncoding::Hex.decode("zz"), None);
    }

    #[test]
    fn keys_are_encoded_in_argv_and_decoded_from_list() {
        let a = parse(&format!(
            "key_encoding = \"hex\"\nlist_key = '^s\\.k(.*)$'\n{}",
            MINI.replace("[commands]", "[commands]\nlist = [\"{program}\", \"list\"]",)
        ))
        .unwrap();
        let argv = a.argv("get", Some("Ab"), None, Path::new("/s")).unwrap();
        assert_eq!(argv[2], "4162");
        assert_eq!(a.list_keys("s.k4162\nnoise\ns.k6b\n"), ["Ab", "k"]);
    }

    #[test]
    fn env_sets_prepends_and_unsets() {
        let a = parse(&format!(
            "{MINI}\n[env]\nPATH = {{ prepend = \"{{adapter_dir}}/bin\" }}\nPYTHONPATH = {{ unset = true }}\nHOME = \"{{scratch}}/home\"\nT = \"${{TOOLS}}/x\"\n"
        ))
        .unwrap();
        let set = a.env_for(Path::new("/s"));
        let get = |k: &str| set.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("PATH").as_deref(), Some("/ad/bin:/usr/bin:/bin"));
        assert_eq!(get("HOME").as_deref(), Some("/s/home"));
        assert_eq!(get("T").as_deref(), Some("/opt/tools/x"));
        assert_eq!(get("PYTHONPATH"), None);
        let cmd = a.command(&["true".into()], Path::new("/s"));
        assert!(
            cmd.get_envs()
                .any(|(k, v)| k == "PYTHONPATH" && v.is_none())
        );
    }

    #[test]
    fn program_not_found_lists_exactly_the_paths_tried() {
        let a = parse(MINI).unwrap();
        let e = a.require_program().unwrap_err().to_string();
        assert!(e.contains("/ad/mini-store"), "{e}");
        assert!(
            e.contains("/usr/bin/mini-store") && e.contains("/bin/mini-store"),
            "{e}"
        );
        assert!(!e.contains("CLOBBER_STORE_BIN"), "{e}");
        let a = parse(&MINI.replace("\"mini-store\"", "\"wrappers/missing.sh\"")).unwrap();
        let e = a.require_program().unwrap_err().to_string();
        assert!(e.contains("tried: /ad/wrappers/missing.sh"), "{e}");
    }

    #[test]
    fn program_env_that_is_set_is_the_only_place_looked() {
        let text = MINI.replace("value =", "program_env = \"MINI_BIN\"\nvalue =");
        let e = Adapter::parse_with_env(Path::new("x.toml"), &text, Some(Path::new("/ad")), &|n| {
            (n == "MINI_BIN").then(|| "/nonexistent/mini-store".to_owned())
        })
        .unwrap()
        .require_program()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("MINI_BIN=/nonexistent/mini-store is not a file"),
            "{e}"
        );
        assert!(!e.contains("tried") && !e.contains("PATH"), "{e}");
    }

    #[test]
    fn capabilities_follow_the_commands_and_must_agree_with_them() {
        let a = parse(MINI).unwrap();
        assert_eq!((a.clear, a.list), (Capability::None, Capability::None));
        assert!(!a.supports(Op::Clear));
        let e = parse(&format!("clear = \"atomic\"\n{MINI}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `commands.clear`"), "{e}");
        let s = Scenario::parse(
            Path::new("cvs.toml"),
            "description = \"d\"\n[[role]]\nname = \"c\"\niterations = 1\nsteps = [{ op = \"clear\" }]\n",
        )
        .unwrap();
        let why = a.missing_capability(&s).unwrap();
        assert!(
            why.contains("needs `clear`") && why.contains("clear = \"none\""),
            "{why}"
        );
        assert!(!why.contains('\n'));
        assert!(
            Adapter::resolve("reference")
                .unwrap()
                .missing_capability(&s)
                .is_none()
        );
    }

    #[test]
    fn setup_and_teardown_take_lists_of_commands() {
        let a = parse(&MINI.replace(
            "[commands]",
            "[commands]\nsetup = [[\"a\", \"{scratch}\"], [\"b\"]]\nteardown = [\"c\", \"x\"]",
        ))
        .unwrap();
        assert_eq!(a.setup_argvs(Path::new("/s")), [vec!["a", "/s"], vec!["b"]]);
        assert_eq!(a.teardown_argvs(Path::new("/s")), [vec!["c", "x"]]);
    }

    #[test]
    fn rules_come_before_the_shorthands() {
        let a = parse(&format!(
            "fail_exit_codes = [1]\n{MINI}\n[[outcomes.get]]\nexit = 0\nstdout = \"empty\"\noutcome = \"not_found\"\n[[outcomes.get]]\nexit = 1\nstderr_contains = \"locked\"\noutcome = \"unknown\"\n"
        ))
        .unwrap();
        assert_eq!(a.answer(Op::Get, 0, "", ""), Answer::NotFound);
        assert_eq!(a.answer(Op::Get, 0, "v\n", ""), Answer::Ok);
        assert_eq!(a.answer(Op::Get, 1, "", "db locked"), Answer::Unknown);
        assert_eq!(a.answer(Op::Get, 1, "", "other"), Answer::Fail);
        assert_eq!(a.answer(Op::Set, 0, "", ""), Answer::Ok);
        let e = parse(&format!(
            "{MINI}\n[[outcomes.set]]\nexit = 1\noutcome = \"not_found\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("outcomes.set"), "{e}");
    }
}
