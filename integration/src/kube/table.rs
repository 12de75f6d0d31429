//! Server-side printing: the `meta.k8s.io` `Table` that `kubectl get` asks for (`Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io`) when it prints for a person, with the
//! columns kubectl shows for each built-in kind (READY, STATUS, RESTARTS, ...) and, for
//! registered kinds, NAME, their printer columns and AGE.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::ResourceKind;

/// The group of the `Table` type.
const TABLE_GROUP: &str = "meta.k8s.io";
/// `Table` versions the fake serves, most preferred first.
const TABLE_VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// The `Table` version an `Accept` header asks for, if any (first acceptable media range).
pub(super) fn table_version(accept: &str) -> Option<&'static str> {
    accept.split(',').find_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        if !parts.next()?.eq_ignore_ascii_case("application/json") {
            return None;
        }
        let (mut g, mut v, mut r#as) = (None, None, None);
        for p in parts {
            match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("g", x)) => g = Some(x),
                Some(("v", x)) => v = Some(x),
                Some(("as", x)) => r#as = Some(x),
                _ => {}
            }
        }
        if g != Some(TABLE_GROUP) || r#as != Some("Table") {
            return None;
        }
        TABLE_VERSIONS.into_iter().find(|known| Some(*known) == v)
    })
}

/// The `Content-Type` of a `Table` answer.
pub(super) fn content_type(version: &str) -> String {
    format!("application/json;as=Table;v={version};g={TABLE_GROUP}")
}

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Include {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    pub fn parse(param: Option<&str>) -> Include {
        match param {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// A `Table` of `body` (a list or one object) of the resource `plural` (`kind` for registered
/// kinds, whose printer columns are added).
pub(super) fn table(
    version: &str,
    plural: &str,
    api_version: &str,
    kind_name: &str,
    registered: Option<&ResourceKind>,
    body: &Value,
    include: Include,
) -> Value {
    let items: Vec<&Value> = match body.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![body],
    };
    let now = Utc::now();
    let columns = columns(plural, registered);
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut row = json!({"cells": cells(plural, registered, item, now)});
            match include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": format!("{TABLE_GROUP}/{version}"),
                        "metadata": item.get("metadata").cloned().unwrap_or(Value::Null),
                    });
                }
                Include::Object => {
                    let mut object = (*item).clone();
                    object["kind"] = json!(kind_name);
                    object["apiVersion"] = json!(api_version);
                    row["object"] = object;
                }
            }
            row
        })
        .collect();
    let resource_version = body
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "kind": "Table",
        "apiVersion": format!("{TABLE_GROUP}/{version}"),
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns
            .iter()
            .map(|(name, ty)| {
                let format = if *name == "Name" { "name" } else { "" };
                json!({"name": name, "type": ty, "format": format, "description": "", "priority": 0})
            })
            .collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// Column names and types, as kubectl shows them.
fn columns(plural: &str, registered: Option<&ResourceKind>) -> Vec<(String, &'static str)> {
    let named = |cols: &[(&str, &'static str)]| -> Vec<(String, &'static str)> {
        cols.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect()
    };
    match (plural, registered) {
        ("pods", None) => named(&[
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "integer"),
            ("Age", "string"),
        ]),
        ("nodes", None) => named(&[
            ("Name", "string"),
            ("Status", "string"),
            ("Roles", "string"),
            ("Age", "string"),
            ("Version", "string"),
        ]),
        ("deployments", None) => named(&[
            ("Name", "string"),
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Age", "string"),
        ]),
        ("daemonsets", None) => named(&[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Node Selector", "string"),
            ("Age", "string"),
        ]),
        ("statefulsets", None) => {
            named(&[("Name", "string"), ("Ready", "string"), ("Age", "string")])
        }
        ("namespaces", None) => {
            named(&[("Name", "string"), ("Status", "string"), ("Age", "string")])
        }
        (_, k) => {
            let mut cols = named(&[("Name", "string")]);
            if let Some(k) = k {
                cols.extend(k.columns.iter().map(|(name, _)| (name.clone(), "string")));
            }
            cols.push(("Age".to_owned(), "string"));
            cols
        }
    }
}

fn cells(
    plural: &str,
    registered: Option<&ResourceKind>,
    item: &Value,
    now: DateTime<Utc>,
) -> Vec<Value> {
    let at = |path: &str| item.pointer(path).cloned().unwrap_or(Value::Null);
    let int = |path: &str| item.pointer(path).and_then(Value::as_i64).unwrap_or(0);
    let name = at("/metadata/name");
    let age = json!(age(item, now));
    match (plural, registered) {
        ("pods", None) => {
            let statuses: Vec<&Value> = item
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c["restartCount"].as_i64())
                .sum();
            let status = statuses
                .iter()
                .find_map(|c| c.pointer("/state/waiting/reason").cloned())
                .unwrap_or_else(|| at("/status/phase"));
            vec![
                name,
                json!(format!("{ready}/{}", statuses.len())),
                status,
                json!(restarts),
                age,
            ]
        }
        ("nodes", None) => {
            let ready = item
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            let status = if ready { "Ready" } else { "NotReady" };
            vec![
                name,
                json!(status),
                json!("<none>"),
                age,
                at("/status/nodeInfo/kubeletVersion"),
            ]
        }
        ("deployments", None) => vec![
            name,
            json!(format!(
                "{}/{}",
                int("/status/readyReplicas"),
                int("/spec/replicas")
            )),
            json!(int("/status/updatedReplicas")),
            json!(int("/status/availableReplicas")),
            age,
        ],
        ("daemonsets", None) => vec![
            name,
            json!(int("/status/desiredNumberScheduled")),
            json!(int("/status/currentNumberScheduled")),
            json!(int("/status/numberReady")),
            json!(int("/status/updatedNumberScheduled")),
            json!(int("/status/numberAvailable")),
            json!("<none>"),
            age,
        ],
        ("statefulsets", None) => vec![
            name,
            json!(format!(
                "{}/{}",
                int("/status/readyReplicas"),
                int("/spec/replicas")
            )),
            age,
        ],
        ("namespaces", None) => vec![name, json!("Active"), age],
        (_, k) => {
            let mut cells = vec![name];
            if let Some(k) = k {
                cells.extend(k.columns.iter().map(|(_, path)| {
                    let pointer = path.trim_start_matches('.').replace('.', "/");
                    item.pointer(&format!("/{pointer}"))
                        .cloned()
                        .unwrap_or(Value::Null)
                }));
            }
            cells.push(age);
            cells
        }
    }
}

/// The AGE column: time since `metadata.creationTimestamp`, like kubectl writes it.
fn age(item: &Value, now: DateTime<Utc>) -> String {
    let Some(created) = item
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    else {
        return "<unknown>".to_owned();
    };
    human_duration((now - created.with_timezone(&Utc)).num_seconds().max(0))
}

/// kubectl's short duration format: `45s`, `3m20s`, `42m`, `5h3m`, `20h`, `3d4h`, `42d`, `2y3d`.
fn human_duration(secs: i64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        format!("{m}m{}s", secs % 60)
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        format!("{h}h{}m", m % 60)
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        format!("{d}d{}h", h % 24)
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(table_version(kubectl), Some("v1"));
        assert_eq!(table_version("application/json"), None);
    }

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(42 * 60), "42m");
        assert_eq!(human_duration(5 * 3600 + 180), "5h3m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600), "3d4h");
        assert_eq!(human_duration(42 * 86_400), "42d");
        assert_eq!(human_duration(800 * 86_400), "2y70d");
    }
}
