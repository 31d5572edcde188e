//! Key and value templates: `my-secret-{index}`, `OAUTH_REFRESH_TOKEN_w{index}_{nanos}_{hex8}`.
//!
//! | placeholder | meaning |
//! |---|---|
//! | `{process}` | the worker's process id in the history (unique in the run) |
//! | `{index}` | the worker's 1-based number within its role |
//! | `{role}` | the role's name |
//! | `{iter}` | the 1-based iteration of the role's loop |
//! | `{nanos}` | the monotonic clock, in nanoseconds, when the key is made |
//! | `{hex8}` | 8 random hex digits from the run's seed |
//! | `{tag}` | values only: the unique tag `p<process>-<sequence>` |
//! | `{A..B}` | keys only, expanded when the scenario is loaded: one step per number |

use crate::rng::Rng;

/// Names a template may use.
const VARS: [&str; 7] = ["process", "index", "role", "iter", "nanos", "hex8", "tag"];

/// What a rendered template may refer to.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    /// `{process}`.
    pub process: u64,
    /// `{index}`.
    pub index: u32,
    /// `{role}`.
    pub role: &'a str,
    /// `{iter}`.
    pub iter: u64,
    /// `{tag}` (values only).
    pub tag: Option<&'a str>,
}

/// Check that every `{...}` in `template` is a known placeholder (and `{tag}` only
/// where `allow_tag`). Returns the placeholders used.
///
/// # Errors
/// A message naming the offending placeholder.
pub fn validate(template: &str, allow_tag: bool) -> Result<Vec<String>, String> {
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
        let name = &after[..close];
        if !VARS.contains(&name) || (name == "tag" && !allow_tag) {
            let allowed: Vec<&str> = VARS
                .iter()
                .copied()
                .filter(|v| allow_tag || *v != "tag")
                .collect();
            return Err(format!(
                "unknown placeholder {{{name}}} in {template:?}; expected one of {}",
                allowed
                    .iter()
                    .map(|v| format!("{{{v}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        used.push(name.to_owned());
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unmatched '}}' in {template:?}"));
    }
    Ok(used)
}

/// Expand the one `{A..B}` range of a key template into one template per number.
/// A template without a range expands to itself.
///
/// # Errors
/// A malformed or empty range, or more than one range.
pub fn expand_range(template: &str) -> Result<Vec<String>, String> {
    let Some(dots) = template.find("..") else {
        return Ok(vec![template.to_owned()]);
    };
    let open = template[..dots]
        .rfind('{')
        .ok_or_else(|| format!("'..' outside a {{A..B}} range in {template:?}"))?;
    let close = dots
        + template[dots..]
            .find('}')
            .ok_or_else(|| format!("unclosed range in {template:?}"))?;
    let (a, b) = (&template[open + 1..dots], &template[dots + 2..close]);
    let parse = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("range bound {s:?} in {template:?} is not a number"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a > b || b - a >= 10_000 {
        return Err(format!(
            "range {{{a}..{b}}} in {template:?} is empty or too long"
        ));
    }
    let (head, tail) = (&template[..open], &template[close + 1..]);
    if tail.contains("..") {
        return Err(format!("more than one range in {template:?}"));
    }
    Ok((a..=b).map(|n| format!("{head}{n}{tail}")).collect())
}

/// Render a validated template.
#[must_use]
pub fn render(template: &str, vars: &Vars<'_>, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        match &after[..close] {
            "process" => out.push_str(&vars.process.to_string()),
            "index" => out.push_str(&vars.index.to_string()),
            "role" => out.push_str(vars.role),
            "iter" => out.push_str(&vars.iter.to_string()),
            "nanos" => out.push_str(&crate::clock::now_ns().to_string()),
            "hex8" => out.push_str(&format!("{:08x}", rng.next_u64() & 0xffff_ffff)),
            "tag" => out.push_str(vars.tag.unwrap_or("")),
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_in_order() {
        assert_eq!(
            expand_range("_churn_{1..3}").unwrap(),
            ["_churn_1", "_churn_2", "_churn_3"]
        );
        assert_eq!(expand_range("k{index}").unwrap(), ["k{index}"]);
        assert!(expand_range("k{3..1}").is_err());
        assert!(expand_range("k{a..b}").is_err());
    }

    #[test]
    fn unknown_placeholders_are_rejected_and_tag_only_in_values() {
        assert!(validate("k-{index}-{iter}", false).is_ok());
        assert!(validate("{tag}", true).is_ok());
        let err = validate("k-{tag}", false).unwrap_err();
        assert!(err.contains("{tag}"), "{err}");
        assert!(validate("k-{bogus}", true).unwrap_err().contains("{bogus}"));
        assert!(validate("k-{index", true).is_err());
    }

    #[test]
    fn render_fills_every_placeholder() {
        let vars = Vars {
            process: 7,
            index: 2,
            role: "churn",
            iter: 5,
            tag: Some("p7-3"),
        };
        let mut rng = Rng::for_worker(1, 7);
        let s = render(
            "{role}/{process}/{index}/{iter}/{tag}/{hex8}",
            &vars,
            &mut rng,
        );
        assert!(s.starts_with("churn/7/2/5/p7-3/"), "{s}");
        assert_eq!(s.rsplit('/').next().unwrap().len(), 8);
    }
}
