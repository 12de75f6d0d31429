//! The API server's own `/metrics`, in the Prometheus text format: what the removed-API
//! preflight reads (`apiserver_requested_deprecated_apis`) and a few ordinary series.

use std::fmt::Write;
use std::time::UNIX_EPOCH;

use super::model::Model;

/// Escapes a label value (`\`, `"` and newlines), as the exposition format requires.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The exposition text of the API server's metrics.
pub(super) fn render(m: &Model) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut out, m);
    out
}

fn write_all(out: &mut String, m: &Model) -> std::fmt::Result {
    // Like client_golang, a vector with no series is left out entirely.
    if !m.deprecated_requested.is_empty() {
        deprecated(out, m)?;
    }
    if !m.responses.is_empty() {
        requests(out, m)?;
    }
    storage(out, m)?;
    writeln!(
        out,
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds."
    )?;
    writeln!(out, "# TYPE process_start_time_seconds gauge")?;
    let started = m
        .started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    writeln!(out, "process_start_time_seconds {started:.3}")
}

fn deprecated(out: &mut String, m: &Model) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release."
    )?;
    writeln!(out, "# TYPE apiserver_requested_deprecated_apis gauge")?;
    for d in &m.deprecated_requested {
        writeln!(
            out,
            "apiserver_requested_deprecated_apis{{group=\"{}\",removed_release=\"{}\",resource=\"{}\",subresource=\"{}\",version=\"{}\"}} 1",
            escape(&d.group),
            escape(&d.removed_release),
            escape(&d.resource),
            escape(&d.subresource),
            escape(&d.version),
        )?;
    }
    Ok(())
}

fn requests(out: &mut String, m: &Model) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code."
    )?;
    writeln!(out, "# TYPE apiserver_request_total counter")?;
    for (code, count) in &m.responses {
        writeln!(
            out,
            "apiserver_request_total{{code=\"{code}\",component=\"apiserver\",verb=\"GET\"}} {count}"
        )?;
    }
    Ok(())
}

fn storage(out: &mut String, m: &Model) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP apiserver_storage_objects [STABLE] Number of stored objects at the time of last check split by kind."
    )?;
    writeln!(out, "# TYPE apiserver_storage_objects gauge")?;
    let mut stored: Vec<(String, usize)> = vec![
        ("daemonsets.apps".to_owned(), m.daemonsets.len()),
        ("deployments.apps".to_owned(), m.deployments.len()),
        ("nodes".to_owned(), m.nodes.len()),
        ("pods".to_owned(), m.pods.len()),
        ("statefulsets.apps".to_owned(), m.statefulsets.len()),
    ];
    for k in &m.kinds {
        let resource = if k.group.is_empty() {
            k.plural.clone()
        } else {
            format!("{}.{}", k.plural, k.group)
        };
        let count = m
            .objects
            .iter()
            .filter(|o| o.api_version == k.api_version() && o.kind == k.kind)
            .count();
        match stored.iter_mut().find(|(r, _)| *r == resource) {
            Some((_, n)) => *n += count,
            None => stored.push((resource, count)),
        }
    }
    stored.sort();
    for (resource, count) in stored {
        writeln!(
            out,
            "apiserver_storage_objects{{resource=\"{}\"}} {count}",
            escape(&resource)
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), r"x\ny");
    }
}
