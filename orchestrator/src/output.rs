//! What people read: diagnostics and the plan table.

use std::fmt::Write as _;

use policies::plan::{FORECAST_ASSUMPTION, Plan};
use policies::versions::Step;
use rings::{Config, Diagnostics, Severity};
use serde_json::{Value, json};

/// Print every finding to stderr, one per line, in file order (with `--log-format json`, one
/// log object per finding: every stderr line of the daemon is JSON).
pub fn print_diagnostics(diags: &Diagnostics) {
    let json = LOG_JSON.get().copied().unwrap_or(false);
    for d in diags.sorted() {
        if json {
            let level = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warn",
            };
            log(level, &[], &d.to_string());
        } else {
            eprintln!("{d}");
        }
    }
}

/// Findings as JSON objects.
pub fn diagnostics_json(diags: &Diagnostics) -> Value {
    Value::Array(
        diags
            .sorted()
            .into_iter()
            .map(|d| {
                json!({
                    "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
                    "file": d.file,
                    "line": d.pos.line,
                    "column": d.pos.col,
                    "message": d.message,
                    "hint": d.hint,
                })
            })
            .collect(),
    )
}

fn step_text(step: &Step) -> String {
    step.iter()
        .map(|c| format!("{} {} → {}", c.component, c.from, c.to))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The plan for people.
pub fn plan_table(plan: &Plan, config: &Config) -> String {
    let mut out = String::new();
    let g = &config.settings.gitops;
    let _ = writeln!(
        out,
        "Plan at {} from {}@{} ({}), {} clusters",
        plan.generated_at,
        rings::load::redact_url(&g.url),
        g.branch,
        config
            .fleet
            .commit
            .get(..12)
            .unwrap_or(&config.fleet.commit),
        config.fleet.clusters.len()
    );
    let _ = writeln!(out, "({FORECAST_ASSUMPTION}.)");
    if plan.releases.is_empty() {
        let _ = writeln!(out, "\nNo releases.");
    }
    let ring_count = config.ring_set.rings.len();
    for release in &plan.releases {
        let _ = writeln!(out, "\nRelease {}: {}", release.name, release.summary);
        for ring in &release.rings {
            let steps = match ring.steps {
                0 => "nothing to change".to_owned(),
                1 => "1 PR".to_owned(),
                n => format!("{n} PRs, one Kubernetes minor each"),
            };
            let _ = writeln!(
                out,
                "  ring {}/{ring_count} {} — {steps}, soak {}",
                ring.position,
                ring.name,
                rings::duration::format_duration(ring.soak)
            );
            match (&ring.window_desc, &ring.next_window) {
                (Some(desc), Some(w)) => {
                    let _ = writeln!(out, "    window {desc}: next {} → {}", w.start, w.end);
                }
                (Some(desc), None) => {
                    let _ = writeln!(
                        out,
                        "    window {desc}: never opens within the search horizon"
                    );
                }
                (None, _) => {
                    let _ = writeln!(out, "    no window: any time outside freezes");
                }
            }
            let forecast = match (&ring.forecast.pr_open, &ring.forecast.passed_by) {
                (Some(open), Some(passed)) => format!("PR opens {open}, ring passes by {passed}"),
                (None, Some(passed)) => format!("passes by {passed}"),
                _ => "unknown".to_owned(),
            };
            match &ring.forecast_note {
                Some(note) => {
                    let _ = writeln!(out, "    forecast: {forecast} ({note})");
                }
                None => {
                    let _ = writeln!(out, "    forecast: {forecast}");
                }
            }
            let width = ring
                .clusters
                .iter()
                .map(|c| c.cluster_id.len())
                .max()
                .unwrap_or(0);
            for c in &ring.clusters {
                let what = match (&c.blocked, c.steps.as_slice()) {
                    (Some(why), _) if why.starts_with("paused: ") => why.clone(),
                    (Some(why), _) => format!("BLOCKED: {why}"),
                    (None, []) => "at target".to_owned(),
                    (None, [one]) => step_text(one),
                    (None, many) => many
                        .iter()
                        .enumerate()
                        .map(|(i, s)| format!("step {}: {}", i + 1, step_text(s)))
                        .collect::<Vec<_>>()
                        .join(" | "),
                };
                let _ = writeln!(out, "    {:width$}  {what}", c.cluster_id);
            }
            if ring.clusters.is_empty() {
                let _ = writeln!(out, "    (no clusters)");
            }
        }
    }
    out
}

static LOG_JSON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Choose the daemon's log format (once, at start).
pub fn set_log_json(json: bool) {
    let _ = LOG_JSON.set(json);
}

/// One log line on stderr: `level` is `info`, `warn` or `error`; `fields` are (key, value)
/// pairs shown in the JSON form and, for `rollout`/`ring`/`kind`, in front of the message in
/// the plain form. Messages never carry secrets: they come from the journal and from errors
/// that redact tokens where they are made.
pub fn log(level: &str, fields: &[(&str, &str)], msg: &str) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if LOG_JSON.get().copied().unwrap_or(false) {
        let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let (rollout, ring) = (get("rollout"), get("ring"));
        // The journal event inside its rollout and ring spans.
        let _rollout = rollout.map(|r| tracing::info_span!("rollout", rollout = r).entered());
        let _ring = ring.map(|r| tracing::info_span!("ring", ring = r).entered());
        let (kind, actor, at) = (get("kind"), get("actor"), get("at"));
        match level {
            "error" => tracing::error!(kind, actor, at, "{msg}"),
            "warn" => tracing::warn!(kind, actor, at, "{msg}"),
            _ => tracing::info!(kind, actor, at, "{msg}"),
        }
    } else {
        let at = fields
            .iter()
            .find(|(k, _)| *k == "at")
            .map_or(now.as_str(), |(_, v)| v);
        let mut line = at.to_owned();
        if level != "info" {
            line.push(' ');
            line.push_str(level);
        }
        for key in ["rollout", "ring", "kind"] {
            if let Some((_, v)) = fields.iter().find(|(k, _)| *k == key) {
                line.push(' ');
                line.push_str(v);
            }
        }
        eprintln!("{line} {msg}");
    }
}
