//! Request handling: one fallback handler that routes on the path segments.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ListMeta, ObjectMeta, ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use k8s_openapi::{List, ListableResource, Metadata};
use serde::Serialize;
use serde_json::{Value, json};

use super::model::Model;
use super::{Shared, lock};

pub(super) fn router(shared: Shared) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

type Reply = Result<Value, Failure>;

/// An error answer: a `Status` object with `status: Failure`.
#[derive(Debug)]
struct Failure {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        (self.code, Json(body)).into_response()
    }
}

fn status(code: StatusCode, reason: &'static str, message: String) -> Failure {
    Failure {
        code,
        reason,
        message,
    }
}

fn not_found(what: String) -> Failure {
    status(StatusCode::NOT_FOUND, "NotFound", what)
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut m = lock(&shared);
    m.requests += 1;
    if method != Method::GET {
        let msg =
            format!("the server does not allow this method on the requested resource: {method}");
        return status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", msg).into_response();
    }
    let path: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
    match route(&m, &path, selector) {
        Ok(body) => Json(body).into_response(),
        Err(failure) => failure.into_response(),
    }
}

fn route(m: &Model, path: &[&str], sel: &str) -> Reply {
    match path {
        ["version"] => version(m),
        ["api"] => to_json(&APIVersions {
            versions: vec!["v1".to_owned()],
            server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                client_cidr: "0.0.0.0/0".to_owned(),
                server_address: m.addr.to_string(),
            }],
        }),
        ["api", "v1"] => resources(
            "v1",
            &[
                ("nodes", "Node", false),
                ("pods", "Pod", true),
                ("namespaces", "Namespace", false),
            ],
        ),
        ["apis"] => {
            let gv = GroupVersionForDiscovery {
                group_version: "apps/v1".to_owned(),
                version: "v1".to_owned(),
            };
            to_json(&APIGroupList {
                groups: vec![APIGroup {
                    name: "apps".to_owned(),
                    preferred_version: Some(gv.clone()),
                    versions: vec![gv],
                    server_address_by_client_cidrs: None,
                }],
            })
        }
        ["apis", "apps", "v1"] => resources(
            "apps/v1",
            &[
                ("deployments", "Deployment", true),
                ("daemonsets", "DaemonSet", true),
                ("statefulsets", "StatefulSet", true),
            ],
        ),
        ["api", "v1", "nodes", rest @ ..] => objects(&m.nodes, None, rest, sel, "nodes"),
        ["api", "v1", "namespaces"] => list(&namespaces(m), None, sel),
        ["api", "v1", "namespaces", name] => one(&namespaces(m), None, name, "namespaces"),
        ["api", "v1", "pods"] => list(&m.pods, None, sel),
        ["api", "v1", "namespaces", ns, "pods", rest @ ..] => {
            objects(&m.pods, Some(ns), rest, sel, "pods")
        }
        ["apis", "apps", "v1", kind] => apps(m, None, kind, &[], sel),
        ["apis", "apps", "v1", "namespaces", ns, kind, rest @ ..] => {
            apps(m, Some(ns), kind, rest, sel)
        }
        _ => Err(not_found(format!(
            "the server could not find the requested resource (get {})",
            path.join("/")
        ))),
    }
}

fn version(m: &Model) -> Reply {
    let core = m.git_version.trim_start_matches('v');
    let core = core.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.');
    let major = parts.next().unwrap_or("").to_owned();
    let minor = parts.next().unwrap_or("").to_owned();
    to_json(&Info {
        major,
        minor,
        git_version: m.git_version.clone(),
        git_commit: "0000000000000000000000000000000000000000".to_owned(),
        git_tree_state: "clean".to_owned(),
        build_date: "2025-01-01T00:00:00Z".to_owned(),
        go_version: "go1.24.0".to_owned(),
        compiler: "gc".to_owned(),
        platform: "linux/amd64".to_owned(),
        ..Info::default()
    })
}

fn resources(group_version: &str, kinds: &[(&str, &str, bool)]) -> Reply {
    let verbs = ["get", "list"].map(String::from).to_vec();
    to_json(&APIResourceList {
        group_version: group_version.to_owned(),
        resources: kinds
            .iter()
            .map(|(name, kind, namespaced)| APIResource {
                name: (*name).to_owned(),
                singular_name: kind.to_lowercase(),
                kind: (*kind).to_owned(),
                namespaced: *namespaced,
                verbs: verbs.clone(),
                ..APIResource::default()
            })
            .collect(),
    })
}

fn apps(m: &Model, ns: Option<&str>, kind: &str, rest: &[&str], sel: &str) -> Reply {
    match kind {
        "deployments" => objects(&m.deployments, ns, rest, sel, kind),
        "daemonsets" => objects(&m.daemonsets, ns, rest, sel, kind),
        "statefulsets" => objects(&m.statefulsets, ns, rest, sel, kind),
        _ => Err(not_found(format!(
            "the server could not find the requested resource ({kind})"
        ))),
    }
}

fn namespaces(m: &Model) -> Vec<Namespace> {
    m.namespaces()
        .into_iter()
        .map(|name| Namespace {
            metadata: ObjectMeta {
                labels: Some([("kubernetes.io/metadata.name".to_owned(), name.clone())].into()),
                name: Some(name),
                resource_version: Some("1".to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        })
        .collect()
}

/// A list (no name segment) or one object (one name segment).
fn objects<T>(items: &[T], ns: Option<&str>, rest: &[&str], sel: &str, plural: &str) -> Reply
where
    T: ListableResource + Metadata<Ty = ObjectMeta> + Serialize + Clone,
{
    match rest {
        [] => list(items, ns, sel),
        [name] => one(items, ns, name, plural),
        _ => Err(not_found(
            "the server could not find the requested resource".to_owned(),
        )),
    }
}

fn one<T>(items: &[T], ns: Option<&str>, name: &str, plural: &str) -> Reply
where
    T: Metadata<Ty = ObjectMeta> + Serialize,
{
    let found = items.iter().find(|o| {
        let md = o.metadata();
        md.name.as_deref() == Some(name) && (ns.is_none() || md.namespace.as_deref() == ns)
    });
    match found {
        Some(o) => to_json(o),
        None => {
            let group = if T::GROUP.is_empty() {
                String::new()
            } else {
                format!(".{}", T::GROUP)
            };
            Err(not_found(format!("{plural}{group} \"{name}\" not found")))
        }
    }
}

fn list<T>(items: &[T], ns: Option<&str>, sel: &str) -> Reply
where
    T: ListableResource + Metadata<Ty = ObjectMeta> + Serialize + Clone,
{
    let selector = parse_selector(sel).map_err(|msg| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("unable to parse requirement: {msg}"),
        )
    })?;
    let items: Vec<T> = items
        .iter()
        .filter(|o| ns.is_none() || o.metadata().namespace.as_deref() == ns)
        .filter(|o| {
            let empty = Default::default();
            let labels = o.metadata().labels.as_ref().unwrap_or(&empty);
            selector.iter().all(|r| r.matches(labels))
        })
        .cloned()
        .collect();
    let rv = items
        .iter()
        .filter_map(|o| {
            o.metadata()
                .resource_version
                .as_deref()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(1);
    let mut body = to_json(&List {
        items,
        metadata: ListMeta {
            resource_version: Some(rv.to_string()),
            ..ListMeta::default()
        },
    })?;
    // The API server leaves kind and apiVersion off the items of a typed list.
    if let Some(items) = body.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            item.remove("kind");
            item.remove("apiVersion");
        }
    }
    Ok(body)
}

#[derive(Debug, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Eq(k, v) => labels.get(k) == Some(v),
            Requirement::NotEq(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        }
    }
}

/// Parses the equality-based selector syntax: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-joined.
fn parse_selector(sel: &str) -> Result<Vec<Requirement>, String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let mut out = Vec::new();
    for term in sel.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let req = if let Some((k, v)) = term.split_once("!=") {
            Requirement::NotEq(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Requirement::Eq(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some(k) = term.strip_prefix('!') {
            Requirement::NotExists(k.trim().to_owned())
        } else {
            Requirement::Exists(term.to_owned())
        };
        let ok = match &req {
            Requirement::Eq(k, v) | Requirement::NotEq(k, v) => {
                valid(k) && (v.is_empty() || valid(v))
            }
            Requirement::Exists(k) | Requirement::NotExists(k) => valid(k),
        };
        if !ok {
            return Err(format!("{term:?}"));
        }
        out.push(req);
    }
    Ok(out)
}

fn to_json<T: Serialize>(value: &T) -> Reply {
    serde_json::to_value(value).map_err(|e| {
        status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn selector_syntax() {
        let r = parse_selector("app=coredns, tier!=web,canary,!legacy").unwrap();
        assert_eq!(
            r,
            vec![
                Requirement::Eq("app".into(), "coredns".into()),
                Requirement::NotEq("tier".into(), "web".into()),
                Requirement::Exists("canary".into()),
                Requirement::NotExists("legacy".into()),
            ]
        );
        assert!(parse_selector("env in (a,b)").is_err());
        assert!(parse_selector("").unwrap().is_empty());
    }
}
