//! Sample input/output files that document and check a profile's scripts.
//!
//! `scripts/<profile>/tests/*.json` each hold one call and its expected result:
//! ```json
//! { "script": "user", "function": "to_backend", "args": [ {…}, {…} ], "expect": {…} }
//! ```
//! Optional members: `description`; `lookups` (`{"offices": {"key": "name", "records":
//! […]}}`) to preload tables; and instead of `expect`, either `expect_plan` (the steps of a
//! plan hook, as [`PlanStep`](super::PlanStep) serialises) or `expect_error` (the
//! `scimType` the script must `fail` with).

use super::{Lookups, ScriptSet};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    #[serde(default)]
    description: Option<String>,
    script: String,
    function: String,
    args: Vec<Value>,
    #[serde(default)]
    lookups: BTreeMap<String, SampleLookup>,
    expect: Option<Value>,
    expect_plan: Option<Value>,
    expect_error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleLookup {
    key: String,
    records: Vec<Value>,
}

/// Runs every sample of the profile whose scripts are in `profile_dir` (samples in
/// `profile_dir/tests/*.json`). Runs in `cargo test` for every bundled profile and from
/// `scimgate check`. Returns how many samples passed, or every failure (compile errors
/// first), one message per problem.
pub fn check_samples(profile_dir: &Path) -> Result<usize, Vec<String>> {
    ScriptSet::load(profile_dir, Lookups::new())
        .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let tests_dir = profile_dir.join("tests");
    let Ok(entries) = std::fs::read_dir(&tests_dir) else {
        return Ok(0);
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    for path in &paths {
        if let Err(e) = run_sample(profile_dir, path) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    if failures.is_empty() {
        Ok(paths.len())
    } else {
        Err(failures)
    }
}

/// Runs one sample on a fresh script set, so lookups of one sample never leak into another.
fn run_sample(profile_dir: &Path, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let sample: Sample = serde_json::from_str(&text).map_err(|e| format!("invalid sample: {e}"))?;
    let described = |e: String| match &sample.description {
        Some(d) => format!("{d}: {e}"),
        None => e,
    };
    let lookups = Lookups::new();
    for (name, table) in sample.lookups {
        lookups.set(&name, &table.key, table.records);
    }
    let set = ScriptSet::load(profile_dir, lookups)
        .map_err(|errs| format!("scripts do not compile: {}", errs[0]))?;
    let outcome = match (sample.expect, sample.expect_plan, sample.expect_error) {
        (Some(want), None, None) => {
            let got = set
                .call(&sample.script, &sample.function, sample.args)
                .map_err(|e| e.to_string())?;
            same(&want, &got)
        }
        (None, Some(want), None) => {
            let steps = set
                .call_plan(&sample.script, &sample.function, sample.args)
                .map_err(|e| e.to_string())?;
            let got = serde_json::to_value(steps).map_err(|e| e.to_string())?;
            same(&want, &got)
        }
        (None, None, Some(want)) => match set.call(&sample.script, &sample.function, sample.args) {
            Ok(v) => Err(format!("expected fail(\"{want}\", …), got {v}")),
            Err(e) => match e.client_error {
                Some(kind) if kind.as_str().eq_ignore_ascii_case(&want) => Ok(()),
                _ => Err(format!("expected fail(\"{want}\", …), got error {e}")),
            },
        },
        _ => Err("give exactly one of expect, expect_plan, expect_error".to_string()),
    };
    outcome.map_err(described)
}

fn same(want: &Value, got: &Value) -> Result<(), String> {
    if want == got {
        return Ok(());
    }
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    Err(format!(
        "result differs (- expected, + got)\n{}",
        line_diff(&pretty(want), &pretty(got))
    ))
}

/// A line diff of two texts (longest common subsequence): `  ` common, `- ` only in `a`,
/// `+ ` only in `b`. Samples are small, so the quadratic table is fine.
fn line_diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod diff_tests {
    use super::line_diff;

    #[test]
    fn line_diff_marks_what_changed() {
        assert_eq!(
            line_diff("a\nb\nc\n", "a\nx\nc\nd\n"),
            "  a\n- b\n+ x\n  c\n+ d\n"
        );
        assert_eq!(line_diff("same\n", "same\n"), "  same\n");
    }
}
