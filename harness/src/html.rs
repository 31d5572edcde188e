//! `--html FILE`: one self-contained page a person opens with a double click.
//!
//! A text witness says *which* operations prove a loss; a picture says *why*: which
//! process was inside the store when, and which write could not have been lost
//! legally. The page holds the checks table and, for each violation, its witness on
//! a timeline — one lane per process, the failing key's operations as bars from
//! invoke to complete, the witness operations outlined, numbered and labelled, and a
//! tooltip with every detail on hover.
//!
//! It stays small whatever the history's size: it draws the failing keys only, and
//! around each witness only the [`CONTEXT_OPS`] operations of that key nearest to it
//! in time (the rest is counted, not drawn), for at most [`MAX_TIMELINES`]
//! violations; the whole history is a summary table. So a 1M-operation history
//! gives a page of the same size as a 10k one. No network, no external script or
//! style sheet, no font: the SVG is drawn here and the one inline script only
//! links table rows to bars (the page works without it).
//!
//! [`Page`] is the page as data; [`sources`] builds one from a run or a check.

use std::fmt::Write as _;

pub mod sources;

/// At most this many operations of the failing key are drawn around one witness.
pub const CONTEXT_OPS: usize = 120;
/// At most this many violations get a timeline (the checks table counts them all).
pub const MAX_TIMELINES: usize = 8;

/// One page: a title, summary facts, the checks, the timelines.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The page title (`clobber run: oauth-churn on clobber-store`).
    pub title: String,
    /// The verdict, upper case (`PASS`, `VIOLATION`, `INCONCLUSIVE`).
    pub verdict: String,
    /// Short facts shown under the title (`seed`, `replay`, `operations`, ...).
    pub facts: Vec<(String, String)>,
    /// The table of checks (or, for `validate`, of runs).
    pub checks: Table,
    /// More tables (operations by kind, partitions, ...).
    pub tables: Vec<Table>,
    /// One timeline per violation drawn.
    pub timelines: Vec<Timeline>,
    /// Violations not drawn (beyond [`MAX_TIMELINES`]).
    pub timelines_omitted: usize,
}

/// A table with a title: the first column is a name, a cell may carry a status
/// class (`ok`, `violation`, `unknown`) that colours it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Heading above the table.
    pub title: String,
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows of (text, status class).
    pub rows: Vec<Vec<(String, Option<Class>)>>,
}

/// How a cell or a verdict is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Passed.
    Ok,
    /// Failed with proof.
    Violation,
    /// Undecided, skipped or not run: never a pass.
    Unknown,
}

impl Class {
    fn css(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Violation => "violation",
            Class::Unknown => "unknown",
        }
    }
}

/// One violation on a timeline.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Heading: `lost write on key my-secret-2`.
    pub title: String,
    /// Why the witness proves it (one or two sentences).
    pub explanation: String,
    /// Times are shown relative to this instant (the run's start).
    pub epoch_ns: u64,
    /// True when times are line numbers (imported logs), not nanoseconds.
    pub times_are_lines: bool,
    /// The operations drawn: the witness and its context.
    pub ops: Vec<Bar>,
    /// Operations of the key that exist but are not drawn.
    pub omitted: usize,
}

/// One operation as a bar.
#[derive(Debug, Clone, Default)]
pub struct Bar {
    /// Its lane.
    pub process: u64,
    /// Invocation time.
    pub invoke_ns: u64,
    /// Completion time; `None`: it never answered (drawn to the right edge, dashed).
    pub complete_ns: Option<u64>,
    /// What it did, short (`set k = "v" -> ok`).
    pub label: String,
    /// Operation kind, for its colour (`set`, `get`, `delete`, `list`, `clear`).
    pub op: String,
    /// Its outcome (`ok`, `not_found`, `fail`, `unknown`).
    pub outcome: String,
    /// For a witness operation, its role in the proof (`acknowledged write`).
    pub role: Option<String>,
    /// For a `get` that read a value: that value (its write is drawn too).
    pub read: Option<String>,
}

fn esc(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c if c.is_control() && c != '\n' => s.push(' '),
            c => s.push(c),
        }
    }
    s
}

/// Shorten `text` to at most `max` characters (an ellipsis marks the cut).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.6em 0 .3em}
.badge{display:inline-block;padding:.1em .6em;border-radius:.3em;color:#fff;font-weight:600}
.badge.ok{background:#2a7a2a}.badge.violation{background:#b3261e}.badge.unknown{background:#8a6d00}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:.6em 0}
dl.facts dt{color:#666}dl.facts dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.ok{color:#2a7a2a}td.violation{color:#b3261e;font-weight:600}td.unknown{color:#8a6d00;font-weight:600}
.mono{font-family:ui-monospace,monospace;font-size:12px}
svg{background:#fcfcfc;border:1px solid #ddd;display:block;margin:.4em 0}
svg text{font:11px ui-monospace,monospace}
.op rect{stroke:#0003;stroke-width:.5}.op.w rect{stroke:#b3261e;stroke-width:2.5}
.op.hl rect{stroke:#000;stroke-width:3}
.set rect{fill:#5b8fd9}.get rect{fill:#5fb36b}.delete rect{fill:#e59a3c}.list rect,.clear rect{fill:#999}
.fail rect{fill-opacity:.35}.damaged rect{fill:#b3261e}.unknown rect{stroke-dasharray:4 2;fill-opacity:.5}
.wl{fill:#b3261e;font-weight:600}.lane{fill:#666}.tick{stroke:#eee}
tr.hl{background:#fff3c4}
.key{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin:0 .25em 0 .8em}.legend{color:#444}
";

const LEGEND: &str = "<p class=\"legend\">Bars run from invoke to complete:\
<i class=\"key\" style=\"background:#5b8fd9\"></i>set<i class=\"key\" style=\"background:#5fb36b\"></i>get\
<i class=\"key\" style=\"background:#e59a3c\"></i>delete<i class=\"key\" style=\"background:#999\"></i>list, clear\
<i class=\"key\" style=\"background:#b3261e\"></i>damaged read; pale: failed; dashed, to the edge: never answered; \
outlined in red and numbered: the witness. Hover a bar or a row for details.</p>\n";

/// Links witness rows and bars both ways on hover; marks the page as rendered
/// (`data-rendered="ok"` on `<html>`, or `"error: ..."` if anything threw), which is
/// what the browser test looks for.
const SCRIPT: &str = "
(function(){var d=document.documentElement;
window.addEventListener('error',function(e){d.setAttribute('data-rendered','error: '+e.message);});
function pair(id,on){document.querySelectorAll('[data-op=\"'+id+'\"]').forEach(function(n){n.classList.toggle('hl',on);});}
document.querySelectorAll('[data-op]').forEach(function(n){var id=n.getAttribute('data-op');
n.addEventListener('mouseenter',function(){pair(id,true);});n.addEventListener('mouseleave',function(){pair(id,false);});});
d.setAttribute('data-rendered','ok');})();
";

impl Page {
    /// The whole page as one HTML document.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(64 * 1024);
        let class = match self.verdict.as_str() {
            "PASS" | "OK" => "ok",
            "VIOLATION" => "violation",
            _ => "unknown",
        };
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>{}</title><style>{STYLE}</style></head><body>\n",
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            "<h1>{} <span class=\"badge {class}\" id=\"verdict\">{}</span></h1>",
            esc(&self.title),
            esc(&self.verdict)
        );
        if !self.facts.is_empty() {
            s.push_str("<dl class=\"facts\">");
            for (k, v) in &self.facts {
                let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
            }
            s.push_str("</dl>\n");
        }
        render_table(&mut s, &self.checks, "checks");
        if !self.timelines.is_empty() {
            s.push_str(LEGEND);
        }
        for (i, t) in self.timelines.iter().enumerate() {
            render_timeline(&mut s, t, i + 1);
        }
        if self.timelines_omitted > 0 {
            let _ = writeln!(
                s,
                "<p>{} more violation(s) not drawn (see the JSON report).</p>",
                self.timelines_omitted
            );
        }
        for t in &self.tables {
            render_table(&mut s, t, "");
        }
        let _ = write!(s, "<script>{SCRIPT}</script>\n</body></html>\n");
        s
    }
}

fn render_table(s: &mut String, t: &Table, id: &str) {
    if t.rows.is_empty() && t.columns.is_empty() {
        return;
    }
    if !t.title.is_empty() {
        let _ = writeln!(s, "<h2>{}</h2>", esc(&t.title));
    }
    if id.is_empty() {
        s.push_str("<table>");
    } else {
        let _ = write!(s, "<table id=\"{id}\">");
    }
    s.push_str("<tr>");
    for c in &t.columns {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr>\n");
    for row in &t.rows {
        s.push_str("<tr>");
        for (text, class) in row {
            match class {
                Some(c) => {
                    let _ = write!(s, "<td class=\"{}\">{}</td>", c.css(), esc(text));
                }
                None => {
                    let _ = write!(s, "<td>{}</td>", esc(text));
                }
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

/// Seconds (or lines) relative to the epoch, as text.
fn at(t: u64, epoch: u64, lines: bool) -> String {
    if lines {
        return format!("line {t}");
    }
    let d = t as f64 - epoch as f64;
    format!("{:+.4}s", d / 1e9)
}

const LEFT: f64 = 56.0;
const WIDTH: f64 = 900.0;
const LANE: f64 = 30.0;
const TOP: f64 = 22.0;

#[allow(clippy::too_many_lines)]
fn render_timeline(s: &mut String, t: &Timeline, n: usize) {
    let _ = writeln!(
        s,
        "<section class=\"violation\" id=\"v{n}\"><h2>{n}. {}</h2><p>{}</p>",
        esc(&t.title),
        esc(&t.explanation)
    );
    if t.ops.is_empty() {
        s.push_str("<p>(no operations to draw)</p></section>\n");
        return;
    }
    let mut lanes: Vec<u64> = t.ops.iter().map(|b| b.process).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let lane_of = |p: u64| lanes.binary_search(&p).unwrap_or(0);
    let t0 = t.ops.iter().map(|b| b.invoke_ns).min().unwrap_or(0);
    let known_end = t
        .ops
        .iter()
        .map(|b| b.complete_ns.unwrap_or(b.invoke_ns))
        .max()
        .unwrap_or(t0);
    // An operation that never answered runs to the right edge: leave it some room.
    let open = t.ops.iter().any(|b| b.complete_ns.is_none());
    let span = (known_end - t0).max(1);
    let t1 = if open {
        known_end + span / 10 + 1
    } else {
        known_end
    };
    let scale = WIDTH / (t1 - t0).max(1) as f64;
    let x = |ns: u64| LEFT + (ns.saturating_sub(t0)) as f64 * scale;
    let height = TOP + lanes.len() as f64 * LANE + 8.0;
    let _ = writeln!(
        s,
        "<svg width=\"{:.0}\" height=\"{height:.0}\" style=\"max-width:100%;height:auto\" viewBox=\"0 0 {:.0} {height:.0}\" role=\"img\">",
        LEFT + WIDTH + 10.0,
        LEFT + WIDTH + 10.0
    );
    // Time axis: five ticks.
    for i in 0..=4u64 {
        let ns = t0 + (t1 - t0) * i / 4;
        let xi = x(ns);
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = writeln!(
            s,
            "<line class=\"tick\" x1=\"{xi:.1}\" y1=\"{TOP}\" x2=\"{xi:.1}\" y2=\"{height:.0}\"/>\
             <text x=\"{xi:.1}\" y=\"12\" text-anchor=\"{anchor}\" class=\"lane\">{}</text>",
            at(ns, t.epoch_ns, t.times_are_lines)
        );
    }
    for (i, p) in lanes.iter().enumerate() {
        let y = TOP + i as f64 * LANE + 18.0;
        let _ = writeln!(s, "<text class=\"lane\" x=\"4\" y=\"{y:.0}\">p{p}</text>");
    }
    let mut order: Vec<usize> = (0..t.ops.len()).collect();
    // Witness operations last, so that they are drawn on top.
    order.sort_by_key(|&i| (t.ops[i].role.is_some(), t.ops[i].invoke_ns));
    let mut witness_no = 0usize;
    let mut numbers = vec![0usize; t.ops.len()];
    let mut by_time: Vec<usize> = (0..t.ops.len())
        .filter(|&i| t.ops[i].role.is_some())
        .collect();
    by_time.sort_by_key(|&i| t.ops[i].invoke_ns);
    for &i in &by_time {
        witness_no += 1;
        numbers[i] = witness_no;
    }
    for i in order {
        let b = &t.ops[i];
        let lane = lane_of(b.process);
        let y = TOP + lane as f64 * LANE + 10.0;
        let x0 = x(b.invoke_ns);
        let x1 = b.complete_ns.map_or(LEFT + WIDTH, x);
        let w = (x1 - x0).max(2.0);
        let detail = format!(
            "p{}  {}\ninvoked {}\n{}{}",
            b.process,
            b.label,
            at(b.invoke_ns, t.epoch_ns, t.times_are_lines),
            b.complete_ns.map_or_else(
                || "never answered (outcome unknown)".to_owned(),
                |c| format!(
                    "completed {} ({:.3} ms)",
                    at(c, t.epoch_ns, t.times_are_lines),
                    (c.saturating_sub(b.invoke_ns)) as f64 / 1e6
                )
            ),
            b.role
                .as_ref()
                .map_or(String::new(), |r| format!("\nwitness {}: {r}", numbers[i]))
        );
        let witness = b.role.is_some();
        let id = if witness {
            format!(
                " data-op=\"v{n}w{}\" id=\"v{n}w{}\"",
                numbers[i], numbers[i]
            )
        } else {
            String::new()
        };
        let _ = write!(
            s,
            "<g class=\"op {} {}{}\"{id}><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"14\"/>\
             <title>{}</title></g>",
            esc(&b.op),
            esc(&b.outcome),
            if witness { " w" } else { "" },
            esc(&detail)
        );
        if let Some(role) = &b.role {
            // The number always; the role too when it fits before the next label
            // of the lane (the witness table below has every role in full).
            let tx = x0.min(LEFT + WIDTH - 16.0);
            let room = label_room(&t.ops, &by_time, i, lane_of, x) - tx;
            let full = format!("{} {}", numbers[i], clip(role, 40));
            let chars = ((room / CHAR_PX) as usize).min(full.chars().count());
            let text = if chars > 6 {
                clip(&full, chars)
            } else {
                numbers[i].to_string()
            };
            let _ = write!(
                s,
                "<text class=\"wl\" x=\"{tx:.1}\" y=\"{:.1}\">{}</text>",
                y - 2.0,
                esc(&text)
            );
        }
        s.push('\n');
    }
    s.push_str("</svg>\n");
    if t.omitted > 0 {
        let _ = writeln!(
            s,
            "<p class=\"note\">{} more operation(s) on this key not drawn (only the {} nearest the witness are).</p>",
            t.omitted,
            t.ops.len()
        );
    }
    // The witness as a table, numbered like the bars.
    s.push_str(
        "<table class=\"witness mono\"><tr><th>#</th><th>process</th><th>invoked</th>\
         <th>completed</th><th>operation</th><th>role</th></tr>\n",
    );
    for &i in &by_time {
        let b = &t.ops[i];
        let _ = writeln!(
            s,
            "<tr data-op=\"v{n}w{}\"><td>{}</td><td>p{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            numbers[i],
            numbers[i],
            b.process,
            at(b.invoke_ns, t.epoch_ns, t.times_are_lines),
            b.complete_ns.map_or_else(
                || "(never)".to_owned(),
                |c| at(c, t.epoch_ns, t.times_are_lines)
            ),
            esc(&b.label),
            esc(b.role.as_deref().unwrap_or(""))
        );
    }
    s.push_str("</table></section>\n");
}

/// Approximate width of one character of the 11 px monospace labels.
const CHAR_PX: f64 = 6.7;

/// The x where the next witness label in the same lane as op `i` starts (or the
/// right edge).
fn label_room(
    ops: &[Bar],
    by_time: &[usize],
    i: usize,
    lane_of: impl Fn(u64) -> usize,
    x: impl Fn(u64) -> f64,
) -> f64 {
    let lane = lane_of(ops[i].process);
    by_time
        .iter()
        .filter(|&&j| j != i && lane_of(ops[j].process) == lane)
        .filter(|&&j| {
            let (xi, xj) = (x(ops[i].invoke_ns), x(ops[j].invoke_ns));
            xj > xi || (xj == xi && j > i)
        })
        .map(|&j| x(ops[j].invoke_ns))
        .fold(LEFT + WIDTH + 10.0, f64::min)
        - 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(p: u64, a: u64, b: Option<u64>, role: Option<&str>) -> Bar {
        Bar {
            process: p,
            invoke_ns: a,
            complete_ns: b,
            label: format!("set k = \"<v{p}>\" -> ok"),
            op: "set".into(),
            outcome: if b.is_some() { "ok" } else { "unknown" }.into(),
            role: role.map(str::to_owned),
            read: None,
        }
    }

    #[test]
    fn a_page_escapes_every_text_and_numbers_the_witness_in_time_order() {
        let page = Page {
            title: "t <script>".into(),
            verdict: "VIOLATION".into(),
            timelines: vec![Timeline {
                title: "lost write on key k".into(),
                ops: vec![
                    bar(2, 50, Some(60), Some("observed it missing")),
                    bar(1, 10, Some(20), Some("acknowledged write")),
                    bar(3, 30, None, None),
                ],
                ..Timeline::default()
            }],
            ..Page::default()
        };
        let html = page.render();
        assert!(!html.contains("<script>\n<") && html.contains("t &lt;script&gt;"));
        assert!(html.contains("&lt;v1&gt;"));
        let first = html
            .find("1 acknowledged write")
            .expect("witness 1 labelled");
        let second = html
            .find("2 observed it missing")
            .expect("witness 2 labelled");
        assert!(first < second);
        assert!(html.contains("id=\"v1w1\"") && html.contains("id=\"v1w2\""));
        assert!(html.contains("never answered"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
