//! Discovery, in both wire formats the API server speaks:
//!
//! - legacy: `/api` → `APIVersions`, `/apis` → `APIGroupList`, `/apis/{group}` → `APIGroup`,
//!   `/api/v1` and `/apis/{group}/{version}` → `APIResourceList` (one request per group
//!   version);
//! - aggregated (`apidiscovery.k8s.io/v2`, and `v2beta1` for older clients): `/api` and
//!   `/apis` answer an `APIGroupDiscoveryList` holding every group, version and resource at
//!   once when the `Accept` header asks for
//!   `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`. kubectl ≥ 1.26,
//!   client-go and kube's `Discovery::run_aggregated` ask for it first and fall back to the
//!   legacy format when the answer's `Content-Type` does not carry those parameters.

use serde_json::{Value, json};

use super::kinds::{Group, Served};

/// The group of the aggregated discovery types.
const DISCOVERY_GROUP: &str = "apidiscovery.k8s.io";
/// The kind of an aggregated discovery document.
const DISCOVERY_KIND: &str = "APIGroupDiscoveryList";
/// Aggregated discovery versions the fake serves, most preferred first.
const DISCOVERY_VERSIONS: [&str; 2] = ["v2", "v2beta1"];
/// The verbs the fake serves on every resource (it is read-only).
const VERBS: [&str; 2] = ["get", "list"];

/// The aggregated discovery version an `Accept` header asks for (`v2`, `v2beta1`), if any:
/// the first media range `application/json` with `g=apidiscovery.k8s.io`,
/// `as=APIGroupDiscoveryList` and a version the fake serves (parameters in any order).
pub(super) fn aggregated_version(accept: &str) -> Option<&'static str> {
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
        if g != Some(DISCOVERY_GROUP) || r#as != Some(DISCOVERY_KIND) {
            return None;
        }
        DISCOVERY_VERSIONS
            .into_iter()
            .find(|known| Some(*known) == v)
    })
}

/// The `Content-Type` of an aggregated discovery answer: the parameters clients check.
pub(super) fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g={DISCOVERY_GROUP};v={version};as={DISCOVERY_KIND}")
}

/// `/api` or `/apis` in the aggregated format: `core` selects the core group (`/api`) or every
/// other group (`/apis`).
pub(super) fn aggregated(groups: &[Group], core: bool, version: &str) -> Value {
    let items: Vec<Value> = groups
        .iter()
        .filter(|g| g.name.is_empty() == core)
        .map(|g| {
            let versions: Vec<Value> = g
                .versions
                .iter()
                .map(|(v, resources)| {
                    json!({
                        "version": v,
                        "resources": resources.iter().map(aggregated_resource).collect::<Vec<_>>(),
                        "freshness": "Current",
                    })
                })
                .collect();
            json!({"metadata": {"name": g.name}, "versions": versions})
        })
        .collect();
    json!({
        "kind": DISCOVERY_KIND,
        "apiVersion": format!("{DISCOVERY_GROUP}/{version}"),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &Served) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.kind.to_lowercase(),
        "verbs": VERBS,
    });
    // Go's `omitempty`: empty lists are left out.
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    v
}

/// `/api` in the legacy format.
pub(super) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis` in the legacy format.
pub(super) fn group_list(groups: &[Group]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(group_body)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}` in the legacy format.
pub(super) fn group(g: &Group) -> Value {
    let mut v = group_body(g);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    v
}

fn group_body(g: &Group) -> Value {
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|(v, _)| json!({"groupVersion": format!("{}/{v}", g.name), "version": v}))
        .collect();
    json!({
        "name": g.name,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/api/v1` or `/apis/{group}/{version}` in the legacy format.
pub(super) fn resource_list(group: &str, version: &str, resources: &[Served]) -> Value {
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = resources
        .iter()
        .map(|r| {
            let mut v = json!({
                "name": r.plural,
                "singularName": r.kind.to_lowercase(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS,
            });
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                v["categories"] = json!(r.categories);
            }
            v
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_negotiation() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(kubectl), Some("v2"));
        let beta = "application/json;as=APIGroupDiscoveryList;v=v2beta1;g=apidiscovery.k8s.io";
        assert_eq!(aggregated_version(beta), Some("v2beta1"));
        assert_eq!(aggregated_version("application/json"), None);
        assert_eq!(aggregated_version("*/*"), None);
        assert_eq!(
            aggregated_version(
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"
            ),
            None
        );
        assert_eq!(
            aggregated_content_type("v2"),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
    }
}
