//! Request routing: GitHub's REST paths matched segment by segment.
//!
//! Branch names contain slashes (`ringmaster/r/ring/1`), so paths are matched as slices rather
//! than with a router's templates; a known path with the wrong verb answers 404, as on GitHub.

mod app;
mod issues;
mod pulls;
mod repos;
mod statuses;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::model::World;

pub(crate) use app::is_app_route;

/// GitHub's documentation link in error bodies.
pub(crate) const DOCS_URL: &str = "https://docs.github.com/rest";

/// Items per page when `per_page` is not given.
const DEFAULT_PER_PAGE: usize = 30;

/// The largest `per_page` GitHub honours.
const MAX_PER_PAGE: usize = 100;

/// An HTTP verb the fake knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Patch,
    Put,
    Delete,
    Other,
}

/// One request, decoded.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub verb: Verb,
    /// The method as sent (`GET`, ...).
    pub method: String,
    /// The path as sent.
    pub path: String,
    /// Percent-decoded path segments.
    pub segments: Vec<String>,
    /// The raw query string.
    pub raw_query: Option<String>,
    pub query: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// The JSON body; an empty body is `{}`.
    pub fn json(&self) -> Result<Value, Reply> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body)
            .map_err(|_| Reply::error(StatusCode::BAD_REQUEST, "Problems parsing JSON"))
    }
}

/// A response before the server adds rate-limit headers and ETags.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply::with(StatusCode::OK, body)
    }

    pub fn with(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// `{"message": ..., "documentation_url": ...}`.
    pub fn error(status: StatusCode, message: &str) -> Reply {
        Reply::with(
            status,
            json!({ "message": message, "documentation_url": DOCS_URL }),
        )
    }

    pub fn not_found() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, "Not Found")
    }

    /// 422 with GitHub's `errors` array.
    pub fn validation(errors: Vec<Value>) -> Reply {
        Reply::with(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "message": "Validation Failed", "errors": errors, "documentation_url": DOCS_URL }),
        )
    }

    /// 422 with one `custom` error and its message.
    pub fn custom(resource: &str, message: &str) -> Reply {
        Reply::validation(vec![
            json!({ "resource": resource, "code": "custom", "message": message }),
        ])
    }

    /// 422 for a field that is missing or invalid (`code` is `missing_field` or `invalid`).
    pub fn field(resource: &str, field: &str, code: &str) -> Reply {
        Reply::validation(vec![
            json!({ "resource": resource, "field": field, "code": code }),
        ])
    }
}

/// One page of `items`, with GitHub's `Link` header when there is more than one page.
pub(crate) fn page<T: Clone>(req: &ApiRequest, api: &str, items: &[T]) -> (Vec<T>, Option<String>) {
    let per_page = req
        .q("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page = req
        .q("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice = items
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .cloned()
        .collect();
    if last == 1 && page == 1 {
        return (slice, None);
    }
    let others: Vec<&str> = req
        .raw_query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("page="))
        .collect();
    let link = |n: usize, rel: &str| {
        let mut q = others.join("&");
        if !q.is_empty() {
            q.push('&');
        }
        format!("<{api}{}?{q}page={n}>; rel=\"{rel}\"", req.path)
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link((page - 1).min(last), "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    (slice, Some(links.join(", ")))
}

/// A paginated JSON array.
pub(crate) fn paginated(req: &ApiRequest, api: &str, items: &[Value]) -> Reply {
    let (slice, link) = page(req, api, items);
    let reply = Reply::ok(Value::Array(slice));
    match link {
        Some(l) => reply.header("link", l),
        None => reply,
    }
}

/// A number in a path (`pulls/{n}`).
fn number(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// Routes a request. The world is locked by the caller.
pub(crate) fn dispatch(world: &mut World, req: &ApiRequest, now: DateTime<Utc>) -> Reply {
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.verb, segments.as_slice()) {
        (Verb::Get, ["rate_limit"]) => repos::rate_limit(world),
        (Verb::Get, ["user"]) => repos::authenticated_user(world),
        (Verb::Post, ["app", "installations", id, "access_tokens"]) => {
            app::access_token(world, req, id, now)
        }
        (Verb::Get, ["repos", owner, name, "installation"]) => {
            app::repo_installation(world, owner, name)
        }
        (_, ["repos", owner, name, rest @ ..]) => match world.ctx(owner, name, now) {
            Some(mut ctx) => repo_route(&mut ctx, req, rest),
            None => Reply::not_found(),
        },
        _ => Reply::not_found(),
    }
}

fn repo_route(ctx: &mut super::model::Ctx<'_>, req: &ApiRequest, rest: &[&str]) -> Reply {
    use Verb::{Delete, Get, Patch, Post, Put};
    match (req.verb, rest) {
        (Get, []) => repos::repository(ctx),
        (Get, ["branches", branch @ ..]) if !branch.is_empty() => {
            repos::branch(ctx, &branch.join("/"))
        }
        (Get, ["git", "ref", "heads", branch @ ..]) if !branch.is_empty() => {
            repos::git_ref(ctx, &branch.join("/"), true)
        }
        (Get, ["git", "refs", "heads", branch @ ..]) if !branch.is_empty() => {
            repos::git_ref(ctx, &branch.join("/"), false)
        }

        (Get, ["pulls"]) => pulls::list(ctx, req),
        (Post, ["pulls"]) => pulls::create(ctx, req),
        (Get, ["pulls", n]) => number(n).map_or_else(Reply::not_found, |n| pulls::get(ctx, n)),
        (Patch | Post, ["pulls", n]) => {
            number(n).map_or_else(Reply::not_found, |n| pulls::update(ctx, req, n))
        }
        (Get, ["pulls", n, "merge"]) => {
            number(n).map_or_else(Reply::not_found, |n| pulls::is_merged(ctx, n))
        }
        (Put, ["pulls", n, "merge"]) => {
            number(n).map_or_else(Reply::not_found, |n| pulls::merge(ctx, req, n))
        }
        (Get, ["pulls", n, "reviews"]) => {
            number(n).map_or_else(Reply::not_found, |n| pulls::reviews(ctx, req, n))
        }
        (Post, ["pulls", n, "reviews"]) => {
            number(n).map_or_else(Reply::not_found, |n| pulls::create_review(ctx, req, n))
        }
        (Get, ["pulls", n, "requested_reviewers"]) => {
            number(n).map_or_else(Reply::not_found, |n| pulls::requested_reviewers(ctx, n))
        }
        (Post, ["pulls", n, "requested_reviewers"]) => number(n)
            .map_or_else(Reply::not_found, |n| {
                pulls::change_reviewers(ctx, req, n, true)
            }),
        (Delete, ["pulls", n, "requested_reviewers"]) => number(n)
            .map_or_else(Reply::not_found, |n| {
                pulls::change_reviewers(ctx, req, n, false)
            }),

        (Get, ["issues", "comments", id]) => {
            number(id).map_or_else(Reply::not_found, |id| issues::comment(ctx, id))
        }
        (Patch | Post, ["issues", "comments", id]) => {
            number(id).map_or_else(Reply::not_found, |id| issues::update_comment(ctx, req, id))
        }
        (Delete, ["issues", "comments", id]) => {
            number(id).map_or_else(Reply::not_found, |id| issues::delete_comment(ctx, id))
        }
        (Get, ["issues", n]) => number(n).map_or_else(Reply::not_found, |n| issues::issue(ctx, n)),
        (Get, ["issues", n, "comments"]) => {
            number(n).map_or_else(Reply::not_found, |n| issues::comments(ctx, req, n))
        }
        (Post, ["issues", n, "comments"]) => {
            number(n).map_or_else(Reply::not_found, |n| issues::create_comment(ctx, req, n))
        }
        (Get, ["issues", n, "labels"]) => {
            number(n).map_or_else(Reply::not_found, |n| issues::labels(ctx, req, n))
        }
        (Post | Put, ["issues", n, "labels"]) => number(n).map_or_else(Reply::not_found, |n| {
            issues::add_labels(ctx, req, n, req.verb == Put)
        }),
        (Delete, ["issues", n, "labels"]) => {
            number(n).map_or_else(Reply::not_found, |n| issues::clear_labels(ctx, n))
        }
        (Delete, ["issues", n, "labels", name]) => {
            number(n).map_or_else(Reply::not_found, |n| issues::remove_label(ctx, n, name))
        }

        (Post, ["statuses", sha]) => statuses::create(ctx, req, sha),
        (Get, ["commits", reference @ .., "status"]) if !reference.is_empty() => {
            statuses::combined(ctx, req, &reference.join("/"))
        }
        (Get, ["commits", reference @ .., "statuses"]) if !reference.is_empty() => {
            statuses::list(ctx, req, &reference.join("/"))
        }
        (Get, ["commits", reference @ .., "check-runs"]) if !reference.is_empty() => {
            statuses::check_runs(ctx, req, &reference.join("/"))
        }
        _ => Reply::not_found(),
    }
}
