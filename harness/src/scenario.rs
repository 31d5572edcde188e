//! Scenarios: the workload of a run, as data (`scenarios/*.toml`).
//!
//! A scenario is a list of roles; each role runs `processes` worker processes, each
//! looping over the same steps (operations and pauses). The schema is documented in
//! `scenarios/README.md`; unknown fields are rejected with the file, the line and
//! the field.

use std::path::{Path, PathBuf};

use clobber_check::history::Op;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result, line_of};
use crate::template;

/// How workers drive the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Spawn the store's CLI once per operation (works for every adapter).
    Cli,
    /// Call the reference store library in a loop (reference store only).
    Lib,
}

impl Mode {
    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Mode::Cli => "cli",
            Mode::Lib => "lib",
        }
    }
}

/// How a `lib`-mode worker holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Handle {
    /// Open the store for every operation, like one CLI process per operation.
    #[default]
    PerOp,
    /// Open it once and keep it, like a long-lived proxy process.
    LongLived,
}

/// One step of a role's loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Perform an operation.
    Op {
        /// Which operation.
        op: Op,
        /// The key template (`set`, `get`, `delete`).
        key: Option<String>,
        /// The value template (`set`), always containing `{tag}`.
        value: Option<String>,
        /// Pad written values with `.` to at least this many bytes.
        pad_to: usize,
    },
    /// Sleep `ms` plus a seeded uniform jitter in `0..=jitter_ms`.
    Pause {
        /// Base pause.
        ms: u64,
        /// Maximum extra pause.
        jitter_ms: u64,
    },
}

/// A role: `processes` identical workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Its name.
    pub name: String,
    /// How many worker processes run it.
    pub processes: u32,
    /// Loop this many times, then stop.
    pub iterations: Option<u64>,
    /// Loop for this long, then stop.
    pub duration_ms: Option<u64>,
    /// Wait this long after the run starts before the first step.
    pub start_ms: u64,
    /// `lib` mode: how the worker holds the store.
    pub handle: Handle,
    /// Keys this role writes are sentinels: written once, they must survive.
    pub sentinel: bool,
    /// The loop body.
    pub steps: Vec<Step>,
}

impl Role {
    /// True if the role stops by itself (iterations or duration); the others run
    /// until every finite role is done.
    #[must_use]
    pub fn is_finite(&self) -> bool {
        self.iterations.is_some() || self.duration_ms.is_some()
    }
}

/// A loaded, validated scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// Its name (the file stem unless given).
    pub name: String,
    /// One paragraph on what it reproduces.
    pub description: String,
    /// The file it came from.
    pub path: PathBuf,
    /// The default driving mode.
    pub mode: Mode,
    /// A `cli` operation that takes longer is killed and recorded as `unknown`.
    pub op_timeout_ms: u64,
    /// The run is stopped (gracefully) after this long.
    pub max_duration_ms: u64,
    /// Run every store process under the syscall perturber with this schedule
    /// (`clobber run --perturb` overrides it); see `clobber_perturb::Schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturb: Option<String>,
    /// The roles.
    pub roles: Vec<Role>,
    /// Pauses given as multiples of the store's latency (`pause_ms = "3x set"`),
    /// filled in by [`Scenario::apply_latency`] once pre-flight has measured it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relative: Vec<RelativePause>,
}

/// A pause that follows the store's speed: `ms` and `jitter_ms` of step `step` of
/// role `role` are `base + sum(factor x median latency of op)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelativePause {
    /// Index of the role.
    pub role: usize,
    /// Index of the step in the role's (expanded) steps.
    pub step: usize,
    /// The pause.
    pub ms: Timing,
    /// Its jitter.
    pub jitter_ms: Timing,
}

impl Eq for RelativePause {}

/// A duration in milliseconds plus multiples of operations' median latencies:
/// `50`, `"3x set"`, `"400 + 4x clear"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Timing {
    /// Fixed milliseconds.
    pub ms: u64,
    /// `(factor, op)`: add `factor` times the store's median latency of `op`.
    pub per_op: Vec<(f64, Op)>,
}

impl Timing {
    /// Parse `"400 + 4x clear"` (terms: milliseconds, or `<factor>x <op>`).
    ///
    /// # Errors
    /// A message naming the bad term.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut t = Timing::default();
        for term in text.split('+').map(str::trim) {
            if let Some((f, op)) = term.split_once('x')
                && let Ok(f) = f.trim().parse::<f64>()
            {
                let op: Op = serde_json::from_value(serde_json::Value::String(op.trim().into()))
                    .map_err(|_| {
                        format!(
                            "{term:?} in {text:?}: expected `<factor>x <set|get|delete|list|clear>`"
                        )
                    })?;
                if !(0.0..=1000.0).contains(&f) {
                    return Err(format!("factor {f} in {text:?} must be 0..=1000"));
                }
                t.per_op.push((f, op));
            } else {
                let ms = term
                    .strip_suffix("ms")
                    .unwrap_or(term)
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= MAX_MS)
                    .ok_or_else(|| {
                        format!(
                            "{term:?} in {text:?}: expected milliseconds (at most {MAX_MS}) or                              `<factor>x <op>` (e.g. \"3x set\")"
                        )
                    })?;
                t.ms += ms;
            }
        }
        Ok(t)
    }

    /// The milliseconds, given each op's median latency in milliseconds.
    #[must_use]
    pub fn resolve(&self, latency_ms: &dyn Fn(Op) -> f64) -> u64 {
        let extra: f64 = self.per_op.iter().map(|(f, op)| f * latency_ms(*op)).sum();
        (self.ms + extra.round() as u64).min(MAX_MS)
    }
}

/// The largest millisecond value a scenario (or `--op-timeout-ms`,
/// `--max-duration-ms`) may give: one day. Larger values are typos, and would
/// overflow the nanosecond clock arithmetic.
pub const MAX_MS: u64 = 86_400_000;

/// A millisecond field, at most [`MAX_MS`] (the error names the field and line).
#[derive(Debug, Clone, Copy)]
struct Ms(u64);

/// A pause field: milliseconds, or a [`Timing`] text.
#[derive(Debug, Clone)]
struct PauseMs(Timing);

impl<'de> Deserialize<'de> for PauseMs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(ms) if ms > MAX_MS => Err(serde::de::Error::custom(format!(
                "{ms} ms is more than a day ({MAX_MS} ms): a typo?"
            ))),
            Raw::Ms(ms) => Ok(PauseMs(Timing {
                ms,
                per_op: Vec::new(),
            })),
            Raw::Text(t) => Timing::parse(&t)
                .map(PauseMs)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Ms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let ms = u64::deserialize(d)?;
        if ms > MAX_MS {
            return Err(serde::de::Error::custom(format!(
                "{ms} ms is more than a day ({MAX_MS} ms): a typo?"
            )));
        }
        Ok(Ms(ms))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    description: String,
    mode: Option<Mode>,
    op_timeout_ms: Option<Ms>,
    max_duration_ms: Option<Ms>,
    perturb: Option<Spanned<String>>,
    role: Vec<Spanned<RoleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    name: String,
    processes: Option<Spanned<u32>>,
    iterations: Option<Spanned<u64>>,
    duration_ms: Option<Spanned<Ms>>,
    start_ms: Option<Ms>,
    handle: Option<Handle>,
    #[serde(default)]
    sentinel: bool,
    steps: Spanned<Vec<Spanned<StepFile>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    op: Option<Op>,
    key: Option<Spanned<String>>,
    value: Option<Spanned<String>>,
    pad_to: Option<usize>,
    pause_ms: Option<PauseMs>,
    jitter_ms: Option<PauseMs>,
}

const MAX_PROCESSES: u32 = 256;

impl Scenario {
    /// Load and validate a scenario file.
    ///
    /// # Errors
    /// I/O errors; configuration errors naming the file, line and field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                let shipped: Vec<String> = crate::validate::SHIPPED
                    .iter()
                    .map(|(name, _)| format!("scenarios/{name}"))
                    .collect();
                Error::usage(format!(
                    "scenario {}: no such file. Shipped scenarios (paths from the \
                         repository root): {}",
                    path.display(),
                    shipped.join(", ")
                ))
            } else {
                Error::io("read scenario", path, e)
            }
        })?;
        Self::parse(path, &text)
    }

    /// Parse and validate scenario text; `path` is used in errors and for the name.
    ///
    /// # Errors
    /// Configuration errors naming the file, line and field.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let file: ScenarioFile =
            toml::from_str(text).map_err(|e| crate::error::toml_error(path, text, &e))?;
        let err = |span: std::ops::Range<usize>, msg: String| {
            Error::config(path, Some(line_of(text, span.start)), msg)
        };
        let name = file.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into())
        });
        if file.role.is_empty() {
            return Err(Error::config(
                path,
                None,
                "no [[role]]: a scenario needs at least one",
            ));
        }
        let mut roles = Vec::new();
        let mut relative = Vec::new();
        for role in file.role {
            let role_span = role.span();
            let role = role.into_inner();
            let ctx = format!("role {:?}", role.name);
            let processes = match role.processes {
                None => 1,
                Some(p) if *p.get_ref() == 0 || *p.get_ref() > MAX_PROCESSES => {
                    return Err(err(
                        p.span(),
                        format!("{ctx}: field `processes` must be 1..={MAX_PROCESSES}"),
                    ));
                }
                Some(p) => p.into_inner(),
            };
            if let (Some(i), Some(_)) = (&role.iterations, &role.duration_ms) {
                return Err(err(
                    i.span(),
                    format!("{ctx}: give `iterations` or `duration_ms`, not both"),
                ));
            }
            let steps_span = role.steps.span();
            let mut steps = Vec::new();
            for (n, step) in role.steps.into_inner().into_iter().enumerate() {
                let span = step.span();
                let step = step.into_inner();
                let sctx = format!("{ctx} step {}", n + 1);
                if let Some(PauseMs(ms)) = &step.pause_ms {
                    let jitter_ms = step
                        .jitter_ms
                        .as_ref()
                        .map(|j| j.0.clone())
                        .unwrap_or_default();
                    if !ms.per_op.is_empty() || !jitter_ms.per_op.is_empty() {
                        relative.push(RelativePause {
                            role: roles.len(),
                            step: steps.len(),
                            ms: ms.clone(),
                            jitter_ms,
                        });
                    }
                }
                steps.extend(parse_step(step, &sctx, span, &err)?);
            }
            if !steps.iter().any(|s| matches!(s, Step::Op { .. })) {
                return Err(err(
                    steps_span,
                    format!("{ctx}: field `steps` has no operation"),
                ));
            }
            if role.handle.is_some_and(|h| h == Handle::LongLived) && role.sentinel {
                return Err(err(
                    role_span,
                    format!("{ctx}: a sentinel role cannot be long-lived"),
                ));
            }
            roles.push(Role {
                name: role.name,
                processes,
                iterations: role.iterations.map(Spanned::into_inner),
                duration_ms: role.duration_ms.map(|d| d.into_inner().0),
                start_ms: role.start_ms.map_or(0, |m| m.0),
                handle: role.handle.unwrap_or_default(),
                sentinel: role.sentinel,
                steps,
            });
        }
        if !roles.iter().any(Role::is_finite) {
            return Err(Error::config(
                path,
                None,
                "no role has `iterations` or `duration_ms`: the run would never end",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for r in &roles {
            if !names.insert(r.name.as_str()) {
                return Err(Error::config(
                    path,
                    None,
                    format!("two roles are named {:?}", r.name),
                ));
            }
        }
        let perturb = match file.perturb {
            Some(p) => {
                let span = p.span();
                let text = p.into_inner();
                if let Err(e) = text.parse::<clobber_perturb::Schedule>() {
                    return Err(err(span, format!("`perturb`: {e}")));
                }
                Some(text)
            }
            None => None,
        };
        Ok(Self {
            name,
            description: file.description,
            path: path.to_path_buf(),
            mode: file.mode.unwrap_or(Mode::Cli),
            op_timeout_ms: file.op_timeout_ms.map_or(10_000, |m| m.0),
            max_duration_ms: file.max_duration_ms.map_or(120_000, |m| m.0),
            perturb,
            roles,
            relative,
        })
    }

    /// The operations whose latency the scenario's timings follow (empty: none).
    #[must_use]
    pub fn latency_ops(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .relative
            .iter()
            .flat_map(|r| {
                r.ms.per_op
                    .iter()
                    .chain(&r.jitter_ms.per_op)
                    .map(|(_, op)| *op)
            })
            .collect();
        ops.sort_by_key(|op| op.name());
        ops.dedup();
        ops
    }

    /// Fill in the pauses given as multiples of the store's latency, from the median
    /// latency (milliseconds) of each operation.
    pub fn apply_latency(&mut self, latency_ms: &dyn Fn(Op) -> f64) {
        for r in &self.relative {
            if let Some(Step::Pause { ms, jitter_ms }) = self
                .roles
                .get_mut(r.role)
                .and_then(|role| role.steps.get_mut(r.step))
            {
                *ms = r.ms.resolve(latency_ms);
                *jitter_ms = r.jitter_ms.resolve(latency_ms);
            }
        }
    }

    /// Total worker processes.
    #[must_use]
    pub fn processes(&self) -> u32 {
        self.roles.iter().map(|r| r.processes).sum()
    }
}

fn parse_step(
    step: StepFile,
    ctx: &str,
    span: std::ops::Range<usize>,
    err: &impl Fn(std::ops::Range<usize>, String) -> Error,
) -> Result<Vec<Step>> {
    match (step.op, step.pause_ms) {
        (Some(_), Some(_)) => Err(err(
            span,
            format!("{ctx}: give `op` or `pause_ms`, not both"),
        )),
        (None, None) => Err(err(span, format!("{ctx}: needs `op` or `pause_ms`"))),
        (None, Some(PauseMs(ms))) => {
            if step.key.is_some() || step.value.is_some() || step.pad_to.is_some() {
                return Err(err(
                    span,
                    format!("{ctx}: a pause takes only `pause_ms` and `jitter_ms`"),
                ));
            }
            Ok(vec![Step::Pause {
                ms: ms.ms,
                jitter_ms: step.jitter_ms.map_or(0, |m| m.0.ms),
            }])
        }
        (Some(op), None) => {
            if step.jitter_ms.is_some() {
                return Err(err(
                    span,
                    format!("{ctx}: field `jitter_ms` belongs to a pause"),
                ));
            }
            let keyed = matches!(op, Op::Set | Op::Get | Op::Delete);
            let keys = match (&step.key, keyed) {
                (None, true) => return Err(err(span, format!("{ctx}: `{op}` needs field `key`"))),
                (Some(k), false) => {
                    return Err(err(k.span(), format!("{ctx}: `{op}` takes no field `key`")));
                }
                (None, false) => vec![None],
                (Some(k), true) => {
                    let expanded = template::expand_range(k.get_ref())
                        .map_err(|m| err(k.span(), format!("{ctx}: field `key`: {m}")))?;
                    for t in &expanded {
                        template::validate(t, false)
                            .map_err(|m| err(k.span(), format!("{ctx}: field `key`: {m}")))?;
                        if t.is_empty() {
                            return Err(err(k.span(), format!("{ctx}: field `key` is empty")));
                        }
                    }
                    expanded.into_iter().map(Some).collect()
                }
            };
            let value = match (&step.value, op) {
                (Some(v), Op::Set) => {
                    let used = template::validate(v.get_ref(), true)
                        .map_err(|m| err(v.span(), format!("{ctx}: field `value`: {m}")))?;
                    if !used.iter().any(|u| u == "tag") {
                        return Err(err(
                            v.span(),
                            format!(
                                "{ctx}: field `value` must contain {{tag}} (written values must be unique)"
                            ),
                        ));
                    }
                    Some(v.get_ref().clone())
                }
                (Some(v), _) => {
                    return Err(err(
                        v.span(),
                        format!("{ctx}: `{op}` takes no field `value`"),
                    ));
                }
                (None, Op::Set) => Some("{tag}".to_owned()),
                (None, _) => None,
            };
            if step.pad_to.is_some() && op != Op::Set {
                return Err(err(span, format!("{ctx}: field `pad_to` belongs to `set`")));
            }
            Ok(keys
                .into_iter()
                .map(|key| Step::Op {
                    op,
                    key,
                    value: value.clone(),
                    pad_to: step.pad_to.unwrap_or(0),
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario> {
        Scenario::parse(Path::new("s.toml"), text)
    }

    const OK: &str = r#"
description = "d"
[[role]]
name = "churn"
processes = 2
steps = [
  { op = "set", key = "_churn_{1..5}" },
  { pause_ms = 50, jitter_ms = 5 },
]
[[role]]
name = "victim"
iterations = 3
steps = [{ op = "delete", key = "v{index}" }, { op = "get", key = "v{index}" }]
"#;

    #[test]
    fn ranges_become_one_step_per_key() {
        let s = parse(OK).unwrap();
        assert_eq!(s.roles[0].steps.len(), 6);
        assert_eq!(s.roles[0].processes, 2);
        assert!(!s.roles[0].is_finite());
        assert!(s.roles[1].is_finite());
        assert_eq!(s.name, "s");
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let text = OK.replace("iterations = 3", "iterations = 3\nbogus_field = 1");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("s.toml:13:"), "{e}");
        assert!(e.contains("bogus_field"), "{e}");
    }

    #[test]
    fn bad_placeholder_is_named_with_its_line() {
        let text = OK.replace(
            "v{index}\" }, { op = \"get\"",
            "v{indx}\" }, { op = \"get\"",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("s.toml:13:"), "{e}");
        assert!(e.contains("field `key`") && e.contains("{indx}"), "{e}");
    }

    #[test]
    fn values_must_stay_unique() {
        let text = OK.replace(r#"key = "_churn_{1..5}""#, r#"key = "k", value = "fixed""#);
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("{tag}"), "{e}");
    }

    #[test]
    fn pauses_can_follow_the_store_latency() {
        let text = OK.replace(
            "{ pause_ms = 50, jitter_ms = 5 }",
            "{ pause_ms = \"400 + 4x clear\", jitter_ms = \"0.5x set\" }",
        );
        let mut s = parse(&text).unwrap();
        assert_eq!(s.latency_ops(), [Op::Clear, Op::Set]);
        assert_eq!(
            s.roles[0].steps[5],
            Step::Pause {
                ms: 400,
                jitter_ms: 0
            }
        );
        s.apply_latency(&|op| if op == Op::Clear { 500.0 } else { 100.0 });
        assert_eq!(
            s.roles[0].steps[5],
            Step::Pause {
                ms: 2400,
                jitter_ms: 50
            }
        );
        assert!(parse(&OK.replace("pause_ms = 50", "pause_ms = \"3x sett\"")).is_err());
        assert!(parse(&OK.replace("pause_ms = 50", "pause_ms = \"soon\"")).is_err());
        assert!(parse(OK).unwrap().latency_ops().is_empty());
    }

    #[test]
    fn a_run_that_never_ends_is_rejected() {
        let text = OK.replace("iterations = 3", "");
        assert!(parse(&text).unwrap_err().to_string().contains("never end"));
    }
}
