//! Request handling: one fallback handler that routes on the path segments.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use k8s_openapi::apimachinery::pkg::version::Info;
use k8s_openapi::{List, ListableResource, Metadata};
use serde::Serialize;
use serde_json::{Value, json};

use super::ResourceKind;
use super::discovery;
use super::kinds::{self, Group};
use super::metrics;
use super::model::{Model, REQUEST_LOG_LIMIT, RequestRecord, StoredObject, time_of};
use super::table;
use super::{Shared, lock};

pub(super) fn router(shared: Shared) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

type Reply = Result<Value, Failure>;

/// What a route answers besides plain JSON.
#[derive(Debug)]
enum Answer {
    /// A JSON document (`application/json`).
    Json(Value),
    /// An aggregated discovery document of this `apidiscovery.k8s.io` version.
    Discovery(Value, &'static str),
    /// Prometheus exposition text.
    Metrics(String),
    /// A list or an object of a resource, which kubectl may ask to see as a `Table`.
    Object(Value, Box<Printed>),
}

/// What a `Table` of a resource needs to know.
#[derive(Debug)]
struct Printed {
    plural: String,
    api_version: String,
    kind: String,
    /// The registered kind, for its printer columns; `None` for built-in kinds.
    registered: Option<ResourceKind>,
}

/// The `Content-Type` of Prometheus' text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

fn no_such_path(path: &[&str]) -> Failure {
    not_found(format!(
        "the server could not find the requested resource (get {})",
        path.join("/")
    ))
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let delay = {
        let mut m = lock(&shared);
        m.requests += 1;
        m.slow
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut m = lock(&shared);
    let response = answer(&mut m, &method, &headers, &uri, &query);
    let code = response.status().as_u16();
    *m.responses.entry(code).or_default() += 1;
    if m.log.len() >= REQUEST_LOG_LIMIT {
        m.log.pop_front();
    }
    m.log.push_back(RequestRecord {
        path: uri.path().to_owned(),
        accept: headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status: code,
    });
    response
}

fn answer(
    m: &mut Model,
    method: &Method,
    headers: &HeaderMap,
    uri: &Uri,
    query: &HashMap<String, String>,
) -> Response {
    if m.errors {
        let msg = "Internal error occurred: the fake cluster answers every request with an error (fault injected)".to_owned();
        return status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", msg).into_response();
    }
    if method != Method::GET {
        let msg =
            format!("the server does not allow this method on the requested resource: {method}");
        return status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", msg).into_response();
    }
    let path: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match route(m, &path, selector, accept) {
        Ok(Answer::Json(body)) => Json(body).into_response(),
        Ok(Answer::Discovery(body, version)) => (
            [
                (
                    header::CONTENT_TYPE,
                    discovery::aggregated_content_type(version),
                ),
                (header::VARY, "Accept".to_owned()),
            ],
            body.to_string(),
        )
            .into_response(),
        Ok(Answer::Metrics(text)) => {
            ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
        }
        Ok(Answer::Object(body, printed)) => object_response(body, &printed, accept, query),
        Err(failure) => failure.into_response(),
    }
}

/// A resource's answer: JSON, or the `Table` kubectl asks for when it prints for a person.
fn object_response(
    body: Value,
    printed: &Printed,
    accept: &str,
    query: &HashMap<String, String>,
) -> Response {
    let Some(version) = table::table_version(accept) else {
        return Json(body).into_response();
    };
    let include = table::Include::parse(query.get("includeObject").map(String::as_str));
    let table = table::table(
        version,
        &printed.plural,
        &printed.api_version,
        &printed.kind,
        printed.registered.as_ref(),
        &body,
        include,
    );
    (
        [(header::CONTENT_TYPE, table::content_type(version))],
        table.to_string(),
    )
        .into_response()
}

fn route(m: &mut Model, path: &[&str], sel: &str, accept: &str) -> Result<Answer, Failure> {
    let served = kinds::served(&m.kinds);
    let groups = kinds::groups(&served);
    let find_group = |name: &str| groups.iter().find(|g| g.name == name);
    let aggregated = discovery::aggregated_version(accept);
    if let (Some(version), ["api"] | ["apis"]) = (aggregated, path) {
        let body = discovery::aggregated(&groups, path == ["api"], version);
        return Ok(Answer::Discovery(body, version));
    }
    match path {
        ["version"] => version(m).map(Answer::Json),
        ["metrics"] => Ok(Answer::Metrics(metrics::render(m))),
        ["api"] => Ok(Answer::Json(discovery::api_versions(&m.addr.to_string()))),
        ["apis"] => Ok(Answer::Json(discovery::group_list(&groups))),
        ["api", "v1"] => group_version(find_group(""), "v1", path),
        ["apis", group] => match find_group(group).filter(|g| !g.name.is_empty()) {
            Some(g) => Ok(Answer::Json(discovery::group(g))),
            None => Err(no_such_path(path)),
        },
        ["apis", group, version] if !group.is_empty() => {
            group_version(find_group(group), version, path)
        }
        ["api", "v1", "namespaces", ns, plural, rest @ ..] => {
            resource(m, "", "v1", Some(ns), plural, rest, sel)
        }
        ["api", "v1", plural, rest @ ..] => resource(m, "", "v1", None, plural, rest, sel),
        ["apis", group, version, "namespaces", ns, plural, rest @ ..] if !group.is_empty() => {
            resource(m, group, version, Some(ns), plural, rest, sel)
        }
        ["apis", group, version, plural, rest @ ..] if !group.is_empty() => {
            resource(m, group, version, None, plural, rest, sel)
        }
        _ => Err(no_such_path(path)),
    }
}

/// `/api/v1` or `/apis/{group}/{version}`: the resources of one group version.
fn group_version(group: Option<&Group>, version: &str, path: &[&str]) -> Result<Answer, Failure> {
    let found = group.and_then(|g| {
        g.versions
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, rs)| (g, rs))
    });
    match found {
        Some((g, resources)) => Ok(Answer::Json(discovery::resource_list(
            &g.name, version, resources,
        ))),
        None => Err(no_such_path(path)),
    }
}

/// One resource's list or object, built-in or registered. Namespaced kinds are listed across
/// namespaces or in one, and read by name in their namespace; cluster-scoped ones never take a
/// namespace.
fn resource(
    m: &mut Model,
    group: &str,
    version: &str,
    ns: Option<&str>,
    plural: &str,
    rest: &[&str],
    sel: &str,
) -> Result<Answer, Failure> {
    let served = kinds::served(&m.kinds);
    let Some(kind) = served
        .iter()
        .find(|s| s.group == group && s.version == version && s.plural == plural)
    else {
        return Err(not_found(format!(
            "the server could not find the requested resource ({plural})"
        )));
    };
    let scope_ok = if kind.namespaced {
        ns.is_some() || rest.is_empty()
    } else {
        ns.is_none()
    };
    if !scope_ok || rest.len() > 1 {
        return Err(not_found(
            "the server could not find the requested resource".to_owned(),
        ));
    }
    let printed = Printed {
        plural: plural.to_owned(),
        api_version: if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.kind.clone(),
        registered: m.kind_by_plural(group, version, plural).cloned(),
    };
    let body = match (group, version, plural) {
        ("", "v1", "nodes") => objects(&m.nodes, None, rest, sel, plural),
        ("", "v1", "namespaces") => objects(&namespaces(m), None, rest, sel, plural),
        ("", "v1", "pods") => objects(&m.served_pods(), ns, rest, sel, plural),
        ("apps", "v1", "deployments") => objects(&m.served_deployments(), ns, rest, sel, plural),
        ("apps", "v1", "daemonsets") => objects(&m.served_daemonsets(), ns, rest, sel, plural),
        ("apps", "v1", "statefulsets") => objects(&m.served_statefulsets(), ns, rest, sel, plural),
        _ => custom(m, group, version, ns, plural, rest, sel),
    }?;
    Ok(Answer::Object(body, Box::new(printed)))
}

/// A registered kind's list (`<Kind>List`, items with their `apiVersion` and `kind` as
/// custom resources are served) or one object.
fn custom(
    m: &mut Model,
    group: &str,
    version: &str,
    ns: Option<&str>,
    plural: &str,
    rest: &[&str],
    sel: &str,
) -> Reply {
    let Some(kind) = m.kind_by_plural(group, version, plural).cloned() else {
        return Err(not_found(format!(
            "the server could not find the requested resource ({plural})"
        )));
    };
    m.deprecated_requested(&kind);
    let api_version = kind.api_version();
    let mut items = m.objects.iter().filter(|o| {
        o.api_version == api_version
            && o.kind == kind.kind
            && (ns.is_none() || o.namespace.as_deref() == ns)
    });
    if let [name] = rest {
        return match items.find(|o| o.name == *name) {
            Some(o) => Ok(o.value.clone()),
            None => Err(not_found(format!("{plural}.{group} \"{name}\" not found"))),
        };
    }
    let selector = parse_selector(sel).map_err(bad_selector)?;
    let empty = serde_json::Map::new();
    let mut selected: Vec<&StoredObject> = items
        .filter(|o| {
            let labels = o
                .value
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            let labels: std::collections::BTreeMap<String, String> = labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            selector.iter().all(|r| r.matches(&labels))
        })
        .collect();
    selected.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let selected: Vec<Value> = selected.into_iter().map(|o| o.value.clone()).collect();
    Ok(json!({
        "apiVersion": api_version,
        "kind": format!("{}List", kind.kind),
        "metadata": {"resourceVersion": m.resource_version.to_string()},
        "items": selected,
    }))
}

fn bad_selector(msg: String) -> Failure {
    status(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("unable to parse requirement: {msg}"),
    )
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

fn namespaces(m: &Model) -> Vec<Namespace> {
    m.namespaces()
        .into_iter()
        .map(|name| Namespace {
            metadata: ObjectMeta {
                labels: Some([("kubernetes.io/metadata.name".to_owned(), name.clone())].into()),
                name: Some(name),
                resource_version: Some("1".to_owned()),
                creation_timestamp: time_of(m.started),
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
    let selector = parse_selector(sel).map_err(bad_selector)?;
    let mut items: Vec<T> = items
        .iter()
        .filter(|o| ns.is_none() || o.metadata().namespace.as_deref() == ns)
        .filter(|o| {
            let empty = Default::default();
            let labels = o.metadata().labels.as_ref().unwrap_or(&empty);
            selector.iter().all(|r| r.matches(labels))
        })
        .cloned()
        .collect();
    // The API server lists in storage-key order: namespace, then name.
    items.sort_by(|a, b| {
        let key = |o: &T| (o.metadata().namespace.clone(), o.metadata().name.clone());
        key(a).cmp(&key(b))
    });
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
