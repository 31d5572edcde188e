//! Adapters: how to drive a store's command line (`adapters/*.toml`).
//!
//! The harness drives every store through one: argv templates for each operation,
//! how the value is passed, how "not found" looks, which exit codes are definite
//! failures and which mean the store is damaged, and the environment that isolates
//! the store in the run's scratch directory. The schema is documented in
//! `adapters/README.md`.
//!
//! `--store` takes an adapter file or a built-in name: `reference` (the reference
//! store, `clobber-store`, with cheap KDF parameters) and `reference:<fault>` for
//! each of its faulty protocols.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clobber_check::history::Op;
use clobber_store::Protocol;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result, line_of};

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

/// How "not found" looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotFound {
    /// The exit code of a `get`/`delete` of a missing key.
    pub exit_code: i32,
    /// Text that standard error must contain too (if given).
    #[serde(default)]
    pub stderr_contains: Option<String>,
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
    /// How `set` passes the value.
    pub value: ValueVia,
    /// Environment, with `{scratch}` filled in at run time.
    pub env: BTreeMap<String, String>,
    /// argv templates, by operation name (`set`, `get`, `delete`, `list`, `clear`,
    /// `setup`, `integrity`).
    pub commands: BTreeMap<String, Vec<String>>,
    /// How "not found" looks.
    pub not_found: NotFound,
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
    /// Variables removed from the store's environment: inherited values that would
    /// change what the store does (the built-in reference store removes every
    /// `CLOBBER_STORE_*` it does not set itself).
    #[serde(default)]
    pub env_remove: Vec<String>,
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
    env: BTreeMap<String, String>,
    commands: Spanned<Commands>,
    not_found: NotFound,
    #[serde(default)]
    fail_exit_codes: Vec<i32>,
    #[serde(default)]
    damaged_exit_codes: Vec<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Commands {
    setup: Option<Spanned<Vec<String>>>,
    set: Spanned<Vec<String>>,
    get: Spanned<Vec<String>>,
    delete: Spanned<Vec<String>>,
    list: Option<Spanned<Vec<String>>>,
    clear: Option<Spanned<Vec<String>>>,
    integrity: Option<Spanned<Vec<String>>>,
}

const PLACEHOLDERS: [&str; 4] = ["program", "key", "value", "scratch"];

impl Adapter {
    /// Resolve `--store`: a built-in name (`reference`, `reference:<fault>`) or an
    /// adapter file.
    ///
    /// # Errors
    /// Unknown built-in, unreadable or malformed file, missing program.
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
            a.env
                .insert("CLOBBER_STORE_UNSAFE_PROTOCOL".into(), name.into());
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
            a.env_remove = remove
                .into_iter()
                .filter(|k| !a.env.contains_key(k))
                .collect();
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

    /// Parse adapter text. Relative program paths are taken from `dir`.
    ///
    /// # Errors
    /// Configuration errors naming the file, line and field.
    pub fn parse(path: &Path, text: &str, dir: Option<&Path>) -> Result<Self> {
        let file: AdapterFile =
            toml::from_str(text).map_err(|e| crate::error::toml_error(path, text, &e))?;
        let _ = file.description;
        let commands_span = file.commands.span();
        let c = file.commands.into_inner();
        let mut commands = BTreeMap::new();
        let entries = [
            ("setup", c.setup),
            ("set", Some(c.set)),
            ("get", Some(c.get)),
            ("delete", Some(c.delete)),
            ("list", c.list),
            ("clear", c.clear),
            ("integrity", c.integrity),
        ];
        for (name, argv) in entries {
            let Some(argv) = argv else { continue };
            let line = Some(line_of(text, argv.span().start));
            let argv = argv.into_inner();
            if argv.is_empty() {
                return Err(Error::config(
                    path,
                    line,
                    format!("field `commands.{name}` is empty"),
                ));
            }
            for arg in &argv {
                check_placeholders(arg).map_err(|m| {
                    Error::config(path, line, format!("field `commands.{name}`: {m}"))
                })?;
            }
            let has = |p: &str| argv.iter().any(|a| a.contains(p));
            let keyed = matches!(name, "set" | "get" | "delete");
            if keyed && !has("{key}") {
                return Err(Error::config(
                    path,
                    line,
                    format!("field `commands.{name}` must contain {{key}}"),
                ));
            }
            if !keyed && has("{key}") {
                return Err(Error::config(
                    path,
                    line,
                    format!("field `commands.{name}` cannot use {{key}}"),
                ));
            }
            let wants_value = name == "set" && file.value == ValueVia::Argument;
            if wants_value != has("{value}") {
                let msg = if wants_value {
                    "must contain {value} (value = \"argument\")".to_owned()
                } else {
                    "cannot use {value} (only `set` with value = \"argument\")".to_owned()
                };
                return Err(Error::config(
                    path,
                    line,
                    format!("field `commands.{name}` {msg}"),
                ));
            }
            commands.insert(name.to_owned(), argv);
        }
        let _ = commands_span;
        for (k, v) in &file.env {
            check_placeholders(v)
                .map_err(|m| Error::config(path, None, format!("field `env.{k}`: {m}")))?;
            if v.contains("{key}") || v.contains("{value}") || v.contains("{program}") {
                return Err(Error::config(
                    path,
                    None,
                    format!("field `env.{k}` may only use {{scratch}}"),
                ));
            }
        }
        let program = resolve_program(&file.program, file.program_env.as_deref(), dir);
        Ok(Self {
            name: file.name,
            source: path.display().to_string(),
            program,
            program_name: file.program,
            value: file.value,
            env: file.env,
            commands,
            not_found: file.not_found,
            fail_exit_codes: file.fail_exit_codes,
            damaged_exit_codes: file.damaged_exit_codes,
            reference: None,
            program_env: file.program_env,
            env_remove: Vec::new(),
        })
    }

    /// The resolved program, or a setup error saying where it was looked for.
    ///
    /// # Errors
    /// The program was not found.
    pub fn require_program(&self) -> Result<&Path> {
        self.program.as_deref().ok_or_else(|| {
            Error::setup(format!(
                "store program `{}` of adapter {} ({}) not found: looked next to the clobber \
                 executable and on PATH{}",
                self.program_name,
                self.name,
                self.source,
                if self.reference.is_some() {
                    "; build it with `cargo build -p clobber-store` or set CLOBBER_STORE_BIN"
                } else {
                    ""
                }
            ))
        })
    }

    /// The argv for `op` on `key` with `value`, or `None` if the adapter has no such
    /// command.
    #[must_use]
    pub fn argv(
        &self,
        command: &str,
        key: Option<&str>,
        value: Option<&str>,
        scratch: &Path,
    ) -> Option<Vec<String>> {
        let template = self.commands.get(command)?;
        let program = self
            .program
            .as_ref()
            .map_or_else(|| self.program_name.clone(), |p| p.display().to_string());
        Some(
            template
                .iter()
                .map(|a| {
                    a.replace("{program}", &program)
                        .replace("{scratch}", &scratch.display().to_string())
                        .replace("{key}", key.unwrap_or(""))
                        .replace("{value}", value.unwrap_or(""))
                })
                .collect(),
        )
    }

    /// The environment with `{scratch}` filled in.
    #[must_use]
    pub fn env_for(&self, scratch: &Path) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.replace("{scratch}", &scratch.display().to_string()),
                )
            })
            .collect()
    }

    /// True if the adapter can run `op`.
    #[must_use]
    pub fn supports(&self, op: Op) -> bool {
        self.commands.contains_key(op.name())
    }
}

fn check_placeholders(arg: &str) -> std::result::Result<(), String> {
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {arg:?}"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} in {arg:?}; expected {{program}}, {{key}}, {{value}} or {{scratch}}"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn resolve_program(program: &str, env: Option<&str>, dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(var) = env
        && let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty())
    {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if program.contains('/') {
        let p = Path::new(program);
        let p = match dir {
            Some(d) if p.is_relative() => d.join(p),
            _ => p.to_path_buf(),
        };
        return p.is_file().then_some(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        for candidate in [d.join(program), d.join("..").join(program)] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_reference_adapter_parses() {
        let a = Adapter::parse(Path::new("clobber-store.toml"), REFERENCE_TOML, None).unwrap();
        assert_eq!(a.value, ValueVia::Stdin);
        assert_eq!(a.not_found.exit_code, 1);
        assert!(a.damaged_exit_codes.contains(&5));
        let argv = a.argv("get", Some("k"), None, Path::new("/s")).unwrap();
        assert_eq!(argv.last().map(String::as_str), Some("k"));
    }

    #[test]
    fn faulty_builtins_set_the_unsafe_protocol() {
        let a = Adapter::resolve("reference:stale-snapshot").unwrap();
        assert_eq!(a.reference, Some(Protocol::StaleSnapshot));
        assert_eq!(
            a.env
                .get("CLOBBER_STORE_UNSAFE_PROTOCOL")
                .map(String::as_str),
            Some("stale-snapshot")
        );
        for fault in ["no-fsync", "no-dir-fsync"] {
            let a = Adapter::resolve(&format!("reference:{fault}")).unwrap();
            assert_eq!(a.name, format!("reference:{fault}"));
            assert_eq!(
                a.env
                    .get("CLOBBER_STORE_UNSAFE_PROTOCOL")
                    .map(String::as_str),
                Some(fault)
            );
        }
        assert!(Adapter::resolve("reference:bogus").is_err());
        // An inherited CLOBBER_STORE_UNSAFE_PROTOCOL cannot make `reference` faulty.
        let correct = Adapter::resolve("reference").unwrap();
        assert_eq!(
            correct
                .env
                .get("CLOBBER_STORE_UNSAFE_PROTOCOL")
                .map(String::as_str),
            Some("")
        );
        assert_eq!(
            Adapter::resolve("reference").unwrap().reference,
            Some(Protocol::Correct)
        );
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
    }
}
