//! `kube.removedApis` against a cluster (DESIGN §6.1): for a Kubernetes step to 1.N, what the
//! cluster still uses of the API versions removed in 1.N or earlier ([`crate::removed_apis`]).
//!
//! Two sources, both needed (neither sees everything):
//! - **stored objects**: for every removed group/version the server still serves (API
//!   discovery), the objects of each removed resource, in every namespace. Every version of a
//!   resource serves the same stored objects, so an object counts only when it was *written
//!   through* the removed version (its `managedFields`, or a `kubectl apply` manifest of that
//!   version, say so): listing FlowSchemas through `v1beta3` returns the built-in ones too.
//! - **requests**: `apiserver_requested_deprecated_apis` from the API server's `/metrics`, the
//!   series whose `removed_release` is 1.N or earlier: some client still calls them.
//!
//! Hits the ring accepts are dropped by the gate's `ignore` list.

use std::collections::BTreeSet;

use kube::api::{Api, ApiResource, DynamicObject, GetParams, ListParams};

use super::Conn;
use crate::removed_apis::{
    REQUESTED_DEPRECATED_METRIC, ignored, parse_requested_deprecated_apis, removed_by,
    written_through,
};

/// Objects asked for per page when listing a removed resource.
pub const PAGE_SIZE: u32 = 500;
/// Hits named per removed resource; the rest are counted in one more hit.
pub const MAX_HITS_PER_RESOURCE: usize = 20;

/// One thing that blocks the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// `group/version/resource[/namespace]/name` (what `ignore` entries match).
    pub key: String,
    /// For people: `policy/v1beta1 PodDisruptionBudget default/legacy-pdb (removed in 1.25)`.
    pub message: String,
}

/// Everything that blocks a step to 1.`target_minor`, minus what `ignore` accepts. An error
/// (discovery, a list, `/metrics`) means the check could not be made.
pub async fn removed_apis_on(
    conn: &Conn,
    target_minor: u64,
    ignore: &[String],
) -> Result<Vec<Hit>, String> {
    let mut hits = stored_objects(conn, target_minor).await?;
    hits.extend(requested(conn, target_minor).await?);
    hits.retain(|h| !ignored(ignore, &h.key));
    Ok(hits)
}

/// Objects written through a removed version the server still serves.
async fn stored_objects(conn: &Conn, target_minor: u64) -> Result<Vec<Hit>, String> {
    let groups = conn
        .call("listing API groups", conn.client().list_api_groups())
        .await?;
    let served: BTreeSet<String> = groups
        .groups
        .iter()
        .flat_map(|g| g.versions.iter().map(|v| v.group_version.clone()))
        .collect();
    let removed: Vec<_> = removed_by(target_minor)
        .filter(|a| served.contains(&a.api_version()))
        .collect();
    let mut hits = Vec::new();
    let versions: BTreeSet<String> = removed.iter().map(|a| a.api_version()).collect();
    for gv in versions {
        let resources = conn
            .call(
                &format!("discovering {gv}"),
                conn.client().list_api_group_resources(&gv),
            )
            .await?;
        for api in removed.iter().filter(|a| a.api_version() == gv) {
            let listable = resources
                .resources
                .iter()
                .any(|r| r.name == api.resource && r.verbs.iter().any(|v| v == "list"));
            if !listable {
                continue;
            }
            let ar = ApiResource {
                group: api.group.to_owned(),
                version: api.version.to_owned(),
                api_version: gv.clone(),
                kind: api.kind.to_owned(),
                plural: api.resource.to_owned(),
            };
            let objects: Api<DynamicObject> = Api::all_with(conn.client().clone(), &ar);
            let mut params = ListParams::default().limit(PAGE_SIZE);
            let mut found = Vec::new();
            loop {
                let page = conn
                    .call(
                        &format!("listing {gv} {}", api.resource),
                        objects.list(&params),
                    )
                    .await?;
                for o in &page.items {
                    let Some(how) = written_through(&o.metadata, &gv) else {
                        continue;
                    };
                    let name = o.metadata.name.as_deref().unwrap_or("");
                    let (key, shown) = match o.metadata.namespace.as_deref() {
                        Some(ns) => (
                            format!("{gv}/{}/{ns}/{name}", api.resource),
                            format!("{ns}/{name}"),
                        ),
                        None => (format!("{gv}/{}/{name}", api.resource), name.to_owned()),
                    };
                    found.push(Hit {
                        key,
                        message: format!(
                            "{gv} {} {shown} (removed in {}), {how}",
                            api.kind,
                            api.removed_in_text()
                        ),
                    });
                }
                match page.metadata.continue_.as_deref() {
                    Some(token) if !token.is_empty() => {
                        params = params.continue_token(token);
                    }
                    _ => break,
                }
            }
            hits.extend(found);
        }
    }
    Ok(hits)
}

/// Removed versions that still receive requests, from the API server's `/metrics`.
async fn requested(conn: &Conn, target_minor: u64) -> Result<Vec<Hit>, String> {
    // `GET /metrics` built by kube's request builder: an empty base path and the name
    // `metrics` (the `http` crate is not a dependency of this crate).
    let request = kube::core::Request::new("")
        .get("metrics", &GetParams::default())
        .map_err(|e| format!("building GET /metrics: {e}"))?;
    let text = conn
        .call(
            "reading the API server's /metrics (ringmaster needs `get` on the non-resource URL /metrics)",
            conn.client().request_text(request),
        )
        .await?;
    let mut hits: Vec<Hit> = parse_requested_deprecated_apis(&text)
        .into_iter()
        .filter(|a| a.removed_minor().is_some_and(|m| m <= target_minor))
        .map(|a| {
            let gv = crate::removed_apis::api_version(&a.group, &a.version);
            let resource = if a.subresource.is_empty() {
                a.resource.clone()
            } else {
                format!("{}/{}", a.resource, a.subresource)
            };
            Hit {
                key: format!("{gv}/{}", a.resource),
                message: format!(
                    "{gv} {resource} still receives requests (removed in {}; {REQUESTED_DEPRECATED_METRIC})",
                    a.removed_release
                ),
            }
        })
        .collect();
    hits.sort_by(|a, b| a.message.cmp(&b.message));
    hits.dedup();
    Ok(hits)
}

/// Keep at most [`MAX_HITS_PER_RESOURCE`] hits per `group/version/resource`, counting the rest
/// in one more hit of that resource.
pub fn cap_hits(hits: Vec<Hit>) -> Vec<Hit> {
    let resource = |h: &Hit| h.key.split('/').take(3).collect::<Vec<_>>().join("/");
    let mut out: Vec<Hit> = Vec::new();
    let mut dropped: Vec<(String, usize)> = Vec::new();
    for h in hits {
        let r = resource(&h);
        if out.iter().filter(|o| resource(o) == r).count() < MAX_HITS_PER_RESOURCE {
            out.push(h);
        } else {
            match dropped.iter_mut().find(|(k, _)| *k == r) {
                Some((_, n)) => *n += 1,
                None => dropped.push((r, 1)),
            }
        }
    }
    for (r, n) in dropped {
        out.push(Hit {
            message: format!("and {n} more objects of {r}"),
            key: r,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_capped_per_resource() {
        let hit = |key: String| Hit {
            message: key.clone(),
            key,
        };
        let mut hits: Vec<Hit> = (0..25)
            .map(|i| hit(format!("policy/v1beta1/poddisruptionbudgets/default/p{i}")))
            .collect();
        hits.push(hit("batch/v1beta1/cronjobs/default/c".into()));
        let capped = cap_hits(hits);
        assert_eq!(capped.len(), MAX_HITS_PER_RESOURCE + 2);
        assert_eq!(
            capped.last().map(|h| h.message.as_str()),
            Some("and 5 more objects of policy/v1beta1/poddisruptionbudgets")
        );
    }
}
