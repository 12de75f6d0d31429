//! What a reviewer reads: the title and Markdown body of a ring PR, the hidden marker that
//! identifies the PR when the store is lost (DESIGN §5), and the markers of comments that must
//! stay single (one halt comment, not one per reconcile).
//!
//! Everything here is a pure function of its inputs: no clock, no I/O, so the same ring step
//! always renders the same text and an unchanged PR is never edited.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::TimeDelta;
use rings::duration::format_duration;
use rings::model::{Config, MergeMode, Release, Ring};
use rings::{ClusterId, Component, Version};
use serde::{Deserialize, Serialize};

use crate::gitops::changes::AppliedEdit;

/// Where a ring stands in the rollout (for the ring matrix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingState {
    /// Every step merged, converged and soaked with all gates green.
    Passed,
    /// Somewhere between PR opened and soak done; the text says where (`soaking, 3h of 24h`).
    InProgress(String),
    /// Not started: an earlier ring has not passed yet, or its window has not come.
    Waiting,
    /// A preflight does not hold; the text says why. Re-checked every reconcile.
    Blocked(String),
    /// A gate failed or a PR was closed; the text says why. Needs a human.
    Halted(String),
    /// No cluster of the ring needs this release.
    NothingToDo,
}

impl RingState {
    /// The matrix cell: an icon and a word, then the detail.
    fn label(&self) -> String {
        let (icon, word, detail) = match self {
            RingState::Passed => ("✅", "passed", None),
            RingState::InProgress(d) => ("🔄", "in progress", Some(d)),
            RingState::Waiting => ("⏳", "waiting", None),
            RingState::Blocked(d) => ("⛔", "blocked", Some(d)),
            RingState::Halted(d) => ("🛑", "halted", Some(d)),
            RingState::NothingToDo => ("➖", "nothing to do", None),
        };
        match detail {
            Some(d) if !d.trim().is_empty() => format!("{icon} {word}: {}", cell(d)),
            _ => format!("{icon} {word}"),
        }
    }
}

/// Gate evidence of the previous ring.
#[derive(Debug, Clone, PartialEq)]
pub struct GateEvidence {
    /// Gate name.
    pub gate: String,
    /// Samples taken over the soak (all clusters).
    pub samples: u32,
    /// Failing samples.
    pub failures: u32,
    /// Inconclusive samples (unreachable cluster, query error, no data).
    pub inconclusive: u32,
    /// Per cluster, the worst value observed (`0.004`, `2/3 Ready`).
    pub worst: Vec<(String, String)>,
}

/// What the previous ring proved before this PR was opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The previous ring's name.
    pub ring: String,
    /// Its required soak.
    pub soak: TimeDelta,
    /// How long it actually soaked.
    pub observed: TimeDelta,
    /// Each gate's samples.
    pub gates: Vec<GateEvidence>,
}

/// Everything a ring PR shows.
#[derive(Debug, Clone)]
pub struct PrContext<'a> {
    /// The loaded configuration (rings, registry).
    pub config: &'a Config,
    /// The release travelling through the rings (the rollout).
    pub release: &'a Release,
    /// Index of the ring in `config.ring_set.rings`.
    pub ring_index: usize,
    /// Step within the ring, from 1.
    pub step: u32,
    /// Every value the PR's commit changes, in commit order (per cluster and component the
    /// registry entry comes first).
    pub edits: &'a [AppliedEdit],
    /// Clusters of the ring that do not move, with the reason: (cluster, why).
    pub left_out: &'a [(String, String)],
    /// Every ring of the rollout in order, with its state.
    pub matrix: &'a [(String, RingState)],
    /// The previous ring's gate evidence; `None` for the first ring.
    pub evidence: Option<&'a Evidence>,
    /// Rule checks performed, one sentence each.
    pub checks: &'a [String],
    /// The PR restores the versions from before the rollout (`abort --revert`).
    pub revert: bool,
}

impl PrContext<'_> {
    fn ring(&self) -> Option<&Ring> {
        self.config.ring_set.rings.get(self.ring_index)
    }

    fn ring_name(&self) -> &str {
        self.ring().map_or("?", |r| r.name.as_str())
    }

    /// `ring 2/4 prod-canary`.
    fn ring_label(&self) -> String {
        let total = self.config.ring_set.rings.len();
        let position = self.ring().map_or(self.ring_index + 1, |r| r.position);
        format!("ring {position}/{total} {}", self.ring_name())
    }

    /// Distinct clusters the PR changes.
    fn clusters_changed(&self) -> usize {
        self.edits
            .iter()
            .map(|e| &e.cluster)
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// The PR title: `[ring 2/4 prod-canary] Kubernetes 1.32 → 1.33 (3 clusters)`.
pub fn title(ctx: &PrContext<'_>) -> String {
    let revert = if ctx.revert { "revert " } else { "" };
    let step = if ctx.step > 1 {
        format!(", step {}", ctx.step)
    } else {
        String::new()
    };
    let changes = change_summary(ctx.edits);
    let changes = if changes.is_empty() {
        ctx.release.summary()
    } else {
        changes
    };
    format!(
        "[{revert}{}{step}] {changes} ({})",
        ctx.ring_label(),
        clusters(ctx.clusters_changed())
    )
}

/// The PR body (GitHub-flavoured Markdown), ending with the hidden [`marker`].
pub fn body(ctx: &PrContext<'_>) -> String {
    let mut out = String::new();
    summary_section(&mut out, ctx);
    clusters_section(&mut out, ctx);
    matrix_section(&mut out, ctx);
    evidence_section(&mut out, ctx);
    checks_section(&mut out, ctx);
    rollback_section(&mut out, ctx);
    out.push_str(
        "<sub>Written by ringmaster; it rewrites this description when the branch is \
         regenerated.</sub>\n\n",
    );
    out.push_str(&marker(&Marker {
        version: MARKER_VERSION,
        rollout: ctx.release.name.to_string(),
        ring: ctx.ring_name().to_owned(),
        step: ctx.step,
        revert: ctx.revert,
    }));
    out.push('\n');
    out
}

fn summary_section(out: &mut String, ctx: &PrContext<'_>) {
    let release = &ctx.release.name;
    let what = ctx.release.summary();
    let changes = change_summary(ctx.edits);
    let changes = if changes.is_empty() {
        "no values".to_owned()
    } else {
        changes
    };
    let n = clusters(ctx.clusters_changed());
    let total = ctx.config.ring_set.rings.len();
    let position = ctx.ring().map_or(ctx.ring_index + 1, |r| r.position);
    let ring = ctx.ring_name();
    let mut s = Vec::new();
    if ctx.revert {
        s.push(format!(
            "This PR **reverts** rollout **{release}** ({what}) in ring **{ring}** (ring \
             {position} of {total}), step {}: it puts {n} back on the versions they ran \
             before ({changes}).",
            ctx.step
        ));
    } else {
        s.push(format!(
            "This PR is step {} of ring **{ring}** (ring {position} of {total}) in rollout \
             **{release}** ({what}). It changes {n}: {changes}.",
            ctx.step
        ));
        if let Some(note) = intermediate_note(ctx) {
            s.push(note);
        }
    }
    if let Some(r) = ctx.ring() {
        match r.merge {
            MergeMode::Auto => s.push(
                "**ringmaster merges this PR once checks pass**, inside the ring's window."
                    .to_owned(),
            ),
            MergeMode::Manual if r.reviewers.is_empty() => {
                s.push("**A reviewer merges this PR**; ringmaster never does.".to_owned());
            }
            MergeMode::Manual => s.push(format!(
                "**A reviewer merges this PR** (review requested from {}); ringmaster never \
                 does.",
                and_list(r.reviewers.iter().map(|x| format!("`{x}`")))
            )),
        }
        match &r.window {
            Some(w) => s.push(format!(
                "The ring's window opens at `{}` ({}) and lasts {}.",
                w.schedule,
                w.timezone,
                format_duration(w.duration)
            )),
            None => s.push("The ring has no window: it may merge at any time.".to_owned()),
        }
        let gates = if r.gates.is_empty() {
            "with no gates beyond convergence".to_owned()
        } else {
            format!(
                "while {} must hold on every cluster",
                and_list(r.gates.iter().map(|g| format!("`{g}`")))
            )
        };
        s.push(format!(
            "After the merge ringmaster waits up to {} for the clusters to converge, then \
             soaks for {} {gates}.",
            format_duration(r.converge_timeout),
            format_duration(r.soak)
        ));
    }
    out.push_str(&s.join(" "));
    out.push_str("\n\n");
    if let Some(d) = ctx
        .release
        .description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        for line in d.trim().lines() {
            out.push_str("> ");
            out.push_str(&escape_html(line));
            out.push('\n');
        }
        out.push('\n');
    }
}

/// Kubernetes moves one minor per step: say which clusters stop at an intermediate minor.
fn intermediate_note(ctx: &PrContext<'_>) -> Option<String> {
    let target = ctx.release.kubernetes.as_ref()?;
    let mut seen = BTreeSet::new();
    let partial: Vec<String> = ctx
        .edits
        .iter()
        .filter(|e| e.component == Component::Kubernetes && seen.insert(&e.cluster))
        .filter(|e| Version::parse(&e.to).is_ok_and(|to| to.major_minor() < target.major_minor()))
        .map(|e| format!("{} ({} → {})", e.cluster, e.from, e.to))
        .collect();
    if partial.is_empty() {
        return None;
    }
    let (verb, pronoun) = if partial.len() == 1 {
        ("stops", "it")
    } else {
        ("stop", "them")
    };
    Some(format!(
        "Kubernetes moves one minor per step, so {} {verb} at an intermediate minor here; \
         the ring's next steps take {pronoun} on to {target}.",
        and_list(partial)
    ))
}

fn clusters_section(out: &mut String, ctx: &PrContext<'_>) {
    out.push_str("### Clusters\n\n");
    if ctx.edits.is_empty() {
        out.push_str("No value changes in this PR.\n\n");
    } else {
        out.push_str("| cluster | component | from | to | file |\n|---|---|---|---|---|\n");
        for e in ctx.edits {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(e.cluster.as_str()),
                cell(&e.component.to_string()),
                cell(&e.from),
                cell(&e.to),
                code(&e.file)
            );
        }
        out.push('\n');
    }
    // Clusters of the ring this PR does not change are listed too: never silently omitted.
    let changed: BTreeSet<&ClusterId> = ctx.edits.iter().map(|e| &e.cluster).collect();
    let mut not_changed: Vec<(String, String)> = ctx.left_out.to_vec();
    for c in ctx.config.ring_clusters(ctx.ring_index) {
        let listed = not_changed.iter().any(|(id, _)| id == c.id.as_str());
        if !changed.contains(&c.id) && !listed {
            not_changed.push((
                c.id.to_string(),
                "already at the target: nothing to change in this step".to_owned(),
            ));
        }
    }
    if !not_changed.is_empty() {
        let _ = writeln!(
            out,
            "Not changed by this PR ({}):\n\n| cluster | why |\n|---|---|",
            clusters(not_changed.len())
        );
        for (id, why) in &not_changed {
            let _ = writeln!(out, "| {} | {} |", cell(id), cell(why));
        }
        out.push('\n');
    }
}

fn matrix_section(out: &mut String, ctx: &PrContext<'_>) {
    out.push_str("### Rollout\n\n| ring | clusters | state |\n|---|---:|---|\n");
    let this = ctx.ring_name();
    for (name, state) in ctx.matrix {
        let count = ctx
            .config
            .ring_set
            .rings
            .iter()
            .position(|r| r.name.as_str() == name)
            .map_or_else(
                || "–".to_owned(),
                |i| ctx.config.ring_clusters(i).count().to_string(),
            );
        let ring = if name == this {
            format!("**{}** ← this PR", cell(name))
        } else {
            cell(name)
        };
        let _ = writeln!(out, "| {ring} | {count} | {} |", state.label());
    }
    out.push('\n');
}

fn evidence_section(out: &mut String, ctx: &PrContext<'_>) {
    let Some(ev) = ctx.evidence else {
        out.push_str("### Evidence\n\n");
        match ctx.ring_index.checked_sub(1) {
            None => out.push_str("First ring: no earlier evidence.\n\n"),
            Some(prev) => {
                let prev = ctx
                    .config
                    .ring_set
                    .rings
                    .get(prev)
                    .map_or("the previous ring", |r| r.name.as_str());
                let _ = writeln!(
                    out,
                    "No gate evidence from {prev} is attached to this PR.\n"
                );
            }
        }
        return;
    };
    let _ = writeln!(out, "### Evidence from {}\n", escape_html(&ev.ring));
    let verdict = if ev.observed >= ev.soak {
        "✅"
    } else {
        "⚠️ shorter than required"
    };
    let _ = writeln!(
        out,
        "Soaked **{}** of {} required {verdict}.\n",
        format_duration(ev.observed),
        format_duration(ev.soak)
    );
    if ev.gates.is_empty() {
        out.push_str("The ring has no gates beyond convergence.\n\n");
        return;
    }
    out.push_str(
        "| gate | samples | failures | inconclusive | worst value per cluster |\n\
         |---|---:|---:|---:|---|\n",
    );
    for g in &ev.gates {
        let worst = if g.worst.is_empty() {
            "–".to_owned()
        } else {
            g.worst
                .iter()
                .map(|(c, v)| format!("{}: {}", cell(c), cell(v)))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {worst} |",
            cell(&g.gate),
            g.samples,
            g.failures,
            g.inconclusive
        );
    }
    out.push('\n');
}

fn checks_section(out: &mut String, ctx: &PrContext<'_>) {
    out.push_str("### Checks performed\n\n");
    if ctx.checks.is_empty() {
        out.push_str("None recorded.\n\n");
        return;
    }
    for c in ctx.checks {
        let _ = writeln!(out, "- {}", escape_html(&one_line(c)));
    }
    out.push('\n');
}

fn rollback_section(out: &mut String, ctx: &PrContext<'_>) {
    out.push_str("### Rollback\n\n");
    let release = ctx.release.name.as_str();
    if ctx.revert {
        out.push_str(
            "This PR is the rollback. It was opened by the command below; to keep the \
             current versions instead, close it without merging (the rollout stays \
             aborted).\n\n",
        );
    } else {
        out.push_str(
            "To stop this rollout and open PRs that put every ring it reached back on the \
             previous versions:\n\n",
        );
    }
    let _ = writeln!(out, "```sh\n{}\n```\n", rollback_command(release));
}

/// The exact command that aborts a rollout and reverts what it changed.
pub fn rollback_command(release: &str) -> String {
    format!("ringmaster abort {release} --revert")
}

/// The version of the [`Marker`] format written by this build.
pub const MARKER_VERSION: u32 = 1;

/// What a PR body records about the PR, so the store can be rebuilt from the forge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Format version; only [`MARKER_VERSION`] is read.
    pub version: u32,
    /// The rollout (release name).
    pub rollout: String,
    /// The ring.
    pub ring: String,
    /// The step within the ring, from 1.
    pub step: u32,
    /// The PR reverts the rollout.
    pub revert: bool,
}

const MARKER_OPEN: &str = "<!-- ringmaster:marker ";
const COMMENT_CLOSE: &str = "-->";

/// The hidden marker line: `<!-- ringmaster:marker {"version":1,...} -->`.
pub fn marker(m: &Marker) -> String {
    let json = |s: &str| {
        // `<` and `>` escaped so no value can close the HTML comment early.
        serde_json::Value::from(s)
            .to_string()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
    };
    format!(
        "{MARKER_OPEN}{{\"version\":{},\"rollout\":{},\"ring\":{},\"step\":{},\"revert\":{}}} {COMMENT_CLOSE}",
        m.version,
        json(&m.rollout),
        json(&m.ring),
        m.step,
        m.revert
    )
}

/// The marker of a PR body: the last one in it (ringmaster writes it as the last line). `None`
/// when there is none, its JSON is malformed, or its version is not [`MARKER_VERSION`].
pub fn parse_marker(body: &str) -> Option<Marker> {
    let start = body.rfind(MARKER_OPEN)? + MARKER_OPEN.len();
    let rest = &body[start..];
    let json = rest[..rest.find(COMMENT_CLOSE)?].trim();
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    if value.get("version")?.as_u64()? != u64::from(MARKER_VERSION) {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The first line of a comment that must stay single (`halt`, `blocked/<ring>`):
/// `<!-- ringmaster:comment <key> -->`. Keys are ringmaster's own (no `-->` in them).
pub fn comment_marker(key: &str) -> String {
    format!("<!-- ringmaster:comment {key} -->")
}

/// The id of the first comment whose first line is [`comment_marker`]`(key)`, among
/// (comment id, body) pairs.
pub fn find_comment<'a>(
    bodies: impl IntoIterator<Item = (u64, &'a str)>,
    key: &str,
) -> Option<u64> {
    let wanted = comment_marker(key);
    bodies
        .into_iter()
        .find(|(_, body)| body.lines().next().map(str::trim) == Some(wanted.as_str()))
        .map(|(id, _)| id)
}

/// `Kubernetes 1.32 → 1.33`, `coredns → 1.11.4, vpc-cni → 1.19.2`: per component, from the
/// first edit of each cluster (its registry entry; extra files may spell versions differently).
fn change_summary(edits: &[AppliedEdit]) -> String {
    let mut seen = BTreeSet::new();
    let mut by_component: BTreeMap<&Component, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for e in edits {
        if !seen.insert((&e.cluster, &e.component)) {
            continue;
        }
        let (froms, tos) = by_component.entry(&e.component).or_default();
        if !froms.contains(&e.from.as_str()) {
            froms.push(&e.from);
        }
        if !tos.contains(&e.to.as_str()) {
            tos.push(&e.to);
        }
    }
    by_component
        .into_iter()
        .map(|(component, (froms, tos))| {
            let name = match component {
                Component::Kubernetes => "Kubernetes",
                Component::Addon(n) | Component::Controller(n) | Component::Policy(n) => n.as_str(),
            };
            match (froms.as_slice(), tos.as_slice()) {
                ([from], [to]) => format!("{name} {from} → {to}"),
                _ => format!("{name} → {}", tos.join(", ")),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 cluster`, `3 clusters`.
fn clusters(n: usize) -> String {
    if n == 1 {
        "1 cluster".to_owned()
    } else {
        format!("{n} clusters")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    match items.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Text that must not open HTML: a stray `<!--` would hide the rest of the body (marker
/// included) or fake a marker. Only a `<` that could start a tag, comment or autolink is
/// escaped, so `<1.35` stays readable in the raw text.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let opens = chars
            .peek()
            .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?'));
        if c == '<' && opens {
            out.push_str("&lt;");
        } else {
            out.push(c);
        }
    }
    out
}

/// Newlines (any convention) become spaces.
fn one_line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\r', '\n'], " ")
}

/// A table cell: HTML defused, `|` escaped, line breaks kept as `<br>`.
fn cell(text: &str) -> String {
    escape_html(text.trim())
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\r', '\n'], "<br>")
}

/// A code span in a table cell (HTML is literal inside code spans; `|` still needs escaping
/// because GFM splits cells first).
fn code(text: &str) -> String {
    let text = one_line(text).replace('|', "\\|");
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

#[cfg(test)]
mod tests;
