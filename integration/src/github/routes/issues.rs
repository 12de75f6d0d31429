//! The issue side of pull requests: the issue itself, comments and labels.

use axum::http::StatusCode;
use serde_json::Value;

use super::{ApiRequest, Reply, paginated};
use crate::github::json;
use crate::github::model::{API_USER, Ctx, IssueComment};

fn comment_count(ctx: &Ctx<'_>, number: u64) -> usize {
    ctx.repo
        .comments
        .iter()
        .filter(|c| c.number == number)
        .count()
}

/// `GET /repos/{o}/{r}/issues/{n}` (every issue here is a pull request).
pub(crate) fn issue(ctx: &Ctx<'_>, number: u64) -> Reply {
    match ctx.repo.pulls.get(&number) {
        Some(p) => Reply::ok(json::issue(
            ctx.api,
            ctx.repo,
            p,
            comment_count(ctx, number),
        )),
        None => Reply::not_found(),
    }
}

/// `GET /repos/{o}/{r}/issues/{n}/comments`, oldest first.
pub(crate) fn comments(ctx: &Ctx<'_>, req: &ApiRequest, number: u64) -> Reply {
    if !ctx.repo.pulls.contains_key(&number) {
        return Reply::not_found();
    }
    let items: Vec<Value> = ctx
        .repo
        .comments
        .iter()
        .filter(|c| c.number == number)
        .map(|c| json::issue_comment(ctx.api, ctx.repo, c))
        .collect();
    paginated(req, ctx.api, &items)
}

fn body_text(req: &ApiRequest) -> Result<String, Reply> {
    let body = req.json()?;
    body.get("body")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Reply::field("IssueComment", "body", "missing_field"))
}

/// `POST /repos/{o}/{r}/issues/{n}/comments`.
pub(crate) fn create_comment(ctx: &mut Ctx<'_>, req: &ApiRequest, number: u64) -> Reply {
    let text = match body_text(req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !ctx.repo.pulls.contains_key(&number) {
        return Reply::not_found();
    }
    let comment = IssueComment {
        id: ctx.next_id(),
        number,
        user: API_USER.to_string(),
        body: text,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let rendered = json::issue_comment(ctx.api, ctx.repo, &comment);
    let location = rendered
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    ctx.repo.comments.push(comment);
    Reply::with(StatusCode::CREATED, rendered).header("location", location)
}

/// `GET /repos/{o}/{r}/issues/comments/{id}`.
pub(crate) fn comment(ctx: &Ctx<'_>, id: u64) -> Reply {
    match ctx.repo.comments.iter().find(|c| c.id == id) {
        Some(c) => Reply::ok(json::issue_comment(ctx.api, ctx.repo, c)),
        None => Reply::not_found(),
    }
}

/// `PATCH /repos/{o}/{r}/issues/comments/{id}` (octocrab sends `POST`, which GitHub accepts).
pub(crate) fn update_comment(ctx: &mut Ctx<'_>, req: &ApiRequest, id: u64) -> Reply {
    let text = match body_text(req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let now = ctx.now;
    let Some(c) = ctx.repo.comments.iter_mut().find(|c| c.id == id) else {
        return Reply::not_found();
    };
    c.body = text;
    c.updated_at = now;
    let c = c.clone();
    Reply::ok(json::issue_comment(ctx.api, ctx.repo, &c))
}

/// `DELETE /repos/{o}/{r}/issues/comments/{id}`.
pub(crate) fn delete_comment(ctx: &mut Ctx<'_>, id: u64) -> Reply {
    let before = ctx.repo.comments.len();
    ctx.repo.comments.retain(|c| c.id != id);
    if ctx.repo.comments.len() == before {
        Reply::not_found()
    } else {
        Reply::empty(StatusCode::NO_CONTENT)
    }
}

fn labels_of(ctx: &Ctx<'_>, number: u64) -> Vec<Value> {
    ctx.repo
        .pulls
        .get(&number)
        .map(|p| json::pull_labels(ctx.api, ctx.repo, p))
        .unwrap_or_default()
}

/// `GET /repos/{o}/{r}/issues/{n}/labels`.
pub(crate) fn labels(ctx: &Ctx<'_>, req: &ApiRequest, number: u64) -> Reply {
    if !ctx.repo.pulls.contains_key(&number) {
        return Reply::not_found();
    }
    paginated(req, ctx.api, &labels_of(ctx, number))
}

/// Label names from `{"labels": ["a", {"name": "b"}]}` or a bare array.
fn label_names(body: &Value) -> Option<Vec<String>> {
    let list = match body {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("labels") {
            Some(Value::Array(a)) => a,
            _ => return None,
        },
        _ => return None,
    };
    list.iter()
        .map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .collect()
}

/// `POST` (add) or `PUT` (replace) `/repos/{o}/{r}/issues/{n}/labels`; unknown labels are
/// created, as GitHub does.
pub(crate) fn add_labels(ctx: &mut Ctx<'_>, req: &ApiRequest, number: u64, replace: bool) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(names) = label_names(&body) else {
        return Reply::field("Label", "labels", "invalid");
    };
    if !ctx.repo.pulls.contains_key(&number) {
        return Reply::not_found();
    }
    let mut canonical = Vec::new();
    for name in names.iter().filter(|n| !n.trim().is_empty()) {
        let ids = &mut *ctx.ids;
        let name = ctx.repo.label_named(name, || {
            let id = *ids;
            *ids += 1;
            id
        });
        canonical.push(name);
    }
    let now = ctx.now;
    if let Some(p) = ctx.repo.pulls.get_mut(&number) {
        if replace {
            p.labels.clear();
        }
        for name in canonical {
            if !p.labels.iter().any(|l| l.eq_ignore_ascii_case(&name)) {
                p.labels.push(name);
            }
        }
        p.updated_at = now;
    }
    Reply::ok(Value::Array(labels_of(ctx, number)))
}

/// `DELETE /repos/{o}/{r}/issues/{n}/labels`.
pub(crate) fn clear_labels(ctx: &mut Ctx<'_>, number: u64) -> Reply {
    match ctx.repo.pulls.get_mut(&number) {
        Some(p) => {
            p.labels.clear();
            Reply::empty(StatusCode::NO_CONTENT)
        }
        None => Reply::not_found(),
    }
}

/// `DELETE /repos/{o}/{r}/issues/{n}/labels/{name}`: the remaining labels.
pub(crate) fn remove_label(ctx: &mut Ctx<'_>, number: u64, name: &str) -> Reply {
    let Some(p) = ctx.repo.pulls.get_mut(&number) else {
        return Reply::not_found();
    };
    let before = p.labels.len();
    p.labels.retain(|l| !l.eq_ignore_ascii_case(name));
    if p.labels.len() == before {
        return Reply::error(StatusCode::NOT_FOUND, "Label does not exist");
    }
    Reply::ok(Value::Array(labels_of(ctx, number)))
}
