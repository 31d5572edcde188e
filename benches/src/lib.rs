//! Helpers shared by the clobber benchmarks: reading criterion's own estimates back so
//! that a bench can print ratios measured side by side in one run.

#![deny(missing_docs)]

use std::path::Path;

/// The mean time in nanoseconds that criterion recorded for `<group>/<function>/<param>`
/// under `out` (its output directory), if that benchmark ran in measuring mode.
#[must_use]
pub fn mean_ns(out: &Path, group: &str, function: &str, param: &str) -> Option<f64> {
    let file = out
        .join(group)
        .join(function)
        .join(param)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Format nanoseconds for a table.
#[must_use]
pub fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}
