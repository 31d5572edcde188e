//! Command templates of an adapter: `{placeholders}`, `${VAR}` from clobber's
//! environment, and the literals `{{`, `}}` and `$$`.
//!
//! A template is parsed once, when the adapter is loaded, into literal text and the
//! placeholders that only a run can fill (`{program}`, `{key}`, `{value}`,
//! `{scratch}`). `{adapter_dir}` and `${VAR}` are filled at load time, so an error
//! (an unset variable, an unknown placeholder) names the file and the field before
//! anything runs, and text that came from the environment or from a literal brace
//! is never read as a placeholder again: `${{n##*/}}` inside `sh -c` stays the
//! shell's `${n##*/}`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// `{program}`: the resolved store program.
    Program,
    /// `{key}`: the key, encoded as the adapter's `key_encoding` says.
    Key,
    /// `{value}`: the value (`set` with `value = "argument"`).
    Value,
    /// `{scratch}`: the run's scratch directory.
    Scratch,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Template(pub Vec<Piece>);

/// What a template may refer to when it is parsed.
pub struct Context<'a> {
    /// The adapter file's directory (`None` for a built-in adapter).
    pub adapter_dir: Option<&'a Path>,
    /// Looks a variable up in clobber's environment.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Placeholders allowed here besides `{adapter_dir}`.
    pub allowed: &'a [&'a str],
}

/// Every run-time placeholder name.
pub const RUNTIME: [&str; 4] = ["program", "key", "value", "scratch"];

impl Template {
    /// Parse `text`.
    ///
    /// # Errors
    /// A message naming the offending placeholder or variable.
    pub fn parse(text: &str, cx: &Context<'_>) -> Result<Self, String> {
        let mut out = Vec::new();
        parse_into(text, cx, &mut out)?;
        Ok(Self(merge(out)))
    }

    /// True if the template uses `piece`.
    #[must_use]
    pub fn uses(&self, piece: &Piece) -> bool {
        self.0.iter().any(|p| p == piece)
    }

    /// The template with every run-time placeholder filled in.
    #[must_use]
    pub fn render(&self, program: &str, key: &str, value: &str, scratch: &str) -> String {
        let mut s = String::new();
        for p in &self.0 {
            s.push_str(match p {
                Piece::Lit(t) => t,
                Piece::Program => program,
                Piece::Key => key,
                Piece::Value => value,
                Piece::Scratch => scratch,
            });
        }
        s
    }

    /// The literal text, if the template has no run-time placeholder.
    #[must_use]
    pub fn literal(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.0 {
            match p {
                Piece::Lit(t) => s.push_str(t),
                _ => return None,
            }
        }
        Some(s)
    }
}

fn merge(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for p in pieces {
        if let (Piece::Lit(t), Some(Piece::Lit(prev))) = (&p, out.last_mut()) {
            prev.push_str(t);
            continue;
        }
        if p != Piece::Lit(String::new()) {
            out.push(p);
        }
    }
    out
}

fn lit(out: &mut Vec<Piece>, s: &str) {
    out.push(Piece::Lit(s.to_owned()));
}

fn parse_into(text: &str, cx: &Context<'_>, out: &mut Vec<Piece>) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                lit(out, &text[start..i]);
                lit(out, "{");
                i += 2;
                start = i;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                lit(out, &text[start..i]);
                lit(out, "}");
                i += 2;
                start = i;
            }
            b'}' => {
                return Err(format!(
                    "unmatched '}}' in {text:?} (write '}}}}' for a literal brace)"
                ));
            }
            b'{' => {
                lit(out, &text[start..i]);
                let close = text[i..].find('}').ok_or_else(|| {
                    format!("unclosed '{{' in {text:?} (write '{{{{' for a literal brace)")
                })? + i;
                let name = &text[i + 1..close];
                out.push(placeholder(name, text, cx)?);
                i = close + 1;
                start = i;
            }
            b'$' if b.get(i + 1) == Some(&b'$') => {
                lit(out, &text[start..i]);
                lit(out, "$");
                i += 2;
                start = i;
            }
            b'$' if b.get(i + 1) == Some(&b'{') && b.get(i + 2) != Some(&b'{') => {
                lit(out, &text[start..i]);
                let close = matching_brace(text, i + 1).ok_or_else(|| {
                    format!("unclosed '${{' in {text:?} (write '$$' for a literal '$')")
                })?;
                let inner = &text[i + 2..close];
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                if name.is_empty()
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || name.starts_with(|c: char| c.is_ascii_digit())
                {
                    return Err(format!(
                        "`${{{inner}}}` in {text:?} is not a variable; write `$${{{{...}}}}` \
                         (or `${{{{...}}}}`) for a literal `${{...}}`"
                    ));
                }
                match ((cx.env)(name), default) {
                    (Some(v), _) => lit(out, &v),
                    (None, Some(d)) => parse_into(d, cx, out)?,
                    (None, None) => {
                        return Err(format!(
                            "`${{{name}}}` in {text:?} is not set in clobber's environment \
                             (give a default: `${{{name}:-...}}`)"
                        ));
                    }
                }
                i = close + 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    lit(out, &text[start..]);
    Ok(())
}

/// The index of the `}` that closes the `{` at `open`.
fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + j);
                }
            }
            _ => {}
        }
    }
    None
}

fn placeholder(name: &str, text: &str, cx: &Context<'_>) -> Result<Piece, String> {
    if name == "adapter_dir" {
        return cx
            .adapter_dir
            .map(|d| Piece::Lit(d.display().to_string()))
            .ok_or_else(|| "{adapter_dir}: a built-in adapter has no directory".to_owned());
    }
    if !cx.allowed.contains(&name) {
        let mut names: Vec<String> = cx.allowed.iter().map(|n| format!("{{{n}}}")).collect();
        names.push("{adapter_dir}".into());
        return Err(format!(
            "unknown placeholder {{{name}}} in {text:?}; expected {} (write '{{{{' and '}}}}' \
             for literal braces)",
            names.join(", ")
        ));
    }
    Ok(match name {
        "program" => Piece::Program,
        "key" => Piece::Key,
        "value" => Piece::Value,
        _ => Piece::Scratch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Template, String> {
        let env = |n: &str| match n {
            "HOME" => Some("/home/u".to_owned()),
            "BRACES" => Some("{key}".to_owned()),
            _ => None,
        };
        Template::parse(
            text,
            &Context {
                adapter_dir: Some(Path::new("/a")),
                env: &env,
                allowed: &RUNTIME,
            },
        )
    }

    fn render(text: &str) -> String {
        parse(text).unwrap().render("P", "K", "V", "/s")
    }

    #[test]
    fn placeholders_adapter_dir_and_variables_are_filled() {
        assert_eq!(
            render("{program} {key}={value} in {scratch} at {adapter_dir} for ${HOME}"),
            "P K=V in /s at /a for /home/u"
        );
        assert_eq!(render("${UNSET_X:-{adapter_dir}/.tools}"), "/a/.tools");
        assert_eq!(render("${UNSET_X:-}"), "");
    }

    #[test]
    fn literal_braces_and_dollars_survive() {
        assert_eq!(render("$${{n##*/}}"), "${n##*/}");
        assert_eq!(render("${{n##*/}}"), "${n##*/}");
        assert_eq!(render(r#""$0" list "$1"/x $$"#), r#""$0" list "$1"/x $"#);
        // Text from the environment is never read as a placeholder.
        assert_eq!(render("${BRACES}"), "{key}");
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(parse("{kee}").unwrap_err().contains("{kee}"));
        assert!(parse("${NOPE}").unwrap_err().contains("not set"));
        assert!(parse("${n##*/}").unwrap_err().contains("literal"));
        assert!(parse("a}b").unwrap_err().contains("unmatched"));
        assert!(parse("a{b").unwrap_err().contains("unclosed"));
    }
}
