//! Gate evaluators (DESIGN §6): the I/O half of the soak. Unlike the rest of this crate these
//! talk to the network and run processes; each returns an [`Observation`] that the pure soak
//! logic ([`crate::soak`]) turns into samples. Anything that could not be evaluated (unreachable,
//! timeout, query error, no data) is [`Outcome::Inconclusive`], never a pass.

use rings::model::{Cluster, FieldKey};

use crate::soak::Outcome;

pub mod command;
pub mod http;
pub mod kube;
pub mod prometheus;

/// One evaluation result.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Pass, fail or inconclusive.
    pub outcome: Outcome,
    /// The observed number, when there is one.
    pub value: Option<f64>,
    /// What was observed, for people: `0.004`, `no data`, `HTTP 503`, `exit 1: <output tail>`.
    pub observed: String,
}

impl Observation {
    pub(crate) fn pass(value: Option<f64>, observed: impl Into<String>) -> Self {
        Observation {
            outcome: Outcome::Pass,
            value,
            observed: observed.into(),
        }
    }

    pub(crate) fn fail(value: Option<f64>, observed: impl Into<String>) -> Self {
        Observation {
            outcome: Outcome::Fail,
            value,
            observed: observed.into(),
        }
    }

    pub(crate) fn inconclusive(observed: impl Into<String>) -> Self {
        Observation {
            outcome: Outcome::Inconclusive,
            value: None,
            observed: observed.into(),
        }
    }
}

/// Characters a substituted value may contain when it lands in a PromQL query or a URL: enough
/// for ids, regions, versions and label values, not enough to leave a quoted label matcher
/// or a URL path segment.
pub(crate) fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
}

/// Replace every `{field}` (a [`FieldKey`] name: `clusterId`, `region`, `labels.cell`, …) in
/// `template` with `lookup(field)`. Braces that do not enclose a bare field name (PromQL label
/// matchers like `{code=~"5.."}`) are left alone.
pub(crate) fn substitute(
    template: &str,
    mut lookup: impl FnMut(&FieldKey) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('}') {
            let name = &after[..name_len];
            let key =
                FieldKey::parse(name).map_err(|e| format!("placeholder `{{{name}}}`: {e}"))?;
            out.push_str(&lookup(&key)?);
            rest = &after[name_len + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of `key` on `cluster`, or an error naming both.
pub(crate) fn field_value(key: &FieldKey, cluster: &Cluster) -> Result<String, String> {
    key.value(cluster).map(|v| v.into_owned()).ok_or_else(|| {
        format!(
            "cluster `{}` has no `{key}` for placeholder `{{{key}}}`",
            cluster.id
        )
    })
}

/// [`field_value`], refusing values with characters outside [`is_safe_char`].
pub(crate) fn safe_field_value(key: &FieldKey, cluster: &Cluster) -> Result<String, String> {
    let value = field_value(key, cluster)?;
    if value.is_empty() || !value.chars().all(is_safe_char) {
        return Err(format!(
            "cluster `{}`: `{key}` value {value:?} may not be substituted (only letters, digits \
             and `._:/-` are allowed)",
            cluster.id
        ));
    }
    Ok(value)
}

/// The last `max` bytes of `text` (on a character boundary), with `…` in front when cut.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// Parse an optional gate timeout (`10s`), with a default.
pub(crate) fn timeout_or(
    text: Option<&str>,
    default: std::time::Duration,
) -> Result<std::time::Duration, String> {
    match text {
        None => Ok(default),
        Some(t) => rings::duration::parse_duration(t)?
            .to_std()
            .map_err(|_| format!("timeout `{t}` must be positive")),
    }
}

/// An error with its sources, `outer: inner: innermost` (a source whose text the chain
/// already shows is not repeated).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
