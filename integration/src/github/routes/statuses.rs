//! Commit statuses (combined and listed) and check runs.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiRequest, Reply, page, paginated};
use crate::github::git;
use crate::github::json;
use crate::github::model::{API_USER, CommitStatus, Ctx, STATUS_STATES};

fn no_commit(reference: &str) -> Reply {
    Reply::error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &format!("No commit found for SHA: {reference}"),
    )
}

/// `POST /repos/{o}/{r}/statuses/{sha}`.
pub(crate) fn create(ctx: &mut Ctx<'_>, req: &ApiRequest, sha: &str) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let state = body.get("state").and_then(Value::as_str).unwrap_or("");
    if !STATUS_STATES.contains(&state) {
        return Reply::validation(vec![json!({
            "resource": "Status", "field": "state", "code": "custom",
            "message": "state is not included in the list",
        })]);
    }
    let Some(sha) = git::resolve_commit(&ctx.repo.git_dir, sha) else {
        return no_commit(sha);
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let status = CommitStatus {
        id: ctx.next_id(),
        sha,
        state: state.to_string(),
        context: text("context").unwrap_or_else(|| "default".to_string()),
        description: text("description"),
        target_url: text("target_url"),
        creator: API_USER.to_string(),
        created_at: ctx.now,
    };
    let rendered = json::status(ctx.api, ctx.repo, &status);
    ctx.repo.statuses.push(status);
    Reply::with(StatusCode::CREATED, rendered)
}

/// The combined state GitHub derives from the latest status of each context.
fn combined_state(latest: &[&CommitStatus]) -> &'static str {
    if latest
        .iter()
        .any(|s| s.state == "failure" || s.state == "error")
    {
        "failure"
    } else if latest.is_empty() || latest.iter().any(|s| s.state == "pending") {
        "pending"
    } else {
        "success"
    }
}

/// `GET /repos/{o}/{r}/commits/{ref}/status`.
pub(crate) fn combined(ctx: &Ctx<'_>, req: &ApiRequest, reference: &str) -> Reply {
    let Some(sha) = git::resolve_commit(&ctx.repo.git_dir, reference) else {
        return no_commit(reference);
    };
    let latest = ctx.repo.latest_statuses(&sha);
    let state = combined_state(&latest);
    let all: Vec<Value> = latest
        .iter()
        .map(|s| json::status(ctx.api, ctx.repo, s))
        .collect();
    let (statuses, link) = page(req, ctx.api, &all);
    let full = ctx.repo.full_name();
    let reply = Reply::ok(json!({
        "state": state,
        "statuses": statuses,
        "sha": sha,
        "total_count": all.len(),
        "repository": {
            "id": ctx.repo.id,
            "node_id": json::node_id("R", ctx.repo.id),
            "name": ctx.repo.name,
            "full_name": full,
            "url": format!("{}/repos/{full}", ctx.api),
        },
        "commit_url": format!("{}/repos/{full}/commits/{sha}", ctx.api),
        "url": format!("{}/repos/{full}/commits/{sha}/status", ctx.api),
    }));
    match link {
        Some(l) => reply.header("link", l),
        None => reply,
    }
}

/// `GET /repos/{o}/{r}/commits/{ref}/statuses`, newest first.
pub(crate) fn list(ctx: &Ctx<'_>, req: &ApiRequest, reference: &str) -> Reply {
    let Some(sha) = git::resolve_commit(&ctx.repo.git_dir, reference) else {
        return no_commit(reference);
    };
    let items: Vec<Value> = ctx
        .repo
        .statuses
        .iter()
        .rev()
        .filter(|s| s.sha == sha)
        .map(|s| json::status(ctx.api, ctx.repo, s))
        .collect();
    paginated(req, ctx.api, &items)
}

/// `GET /repos/{o}/{r}/commits/{ref}/check-runs` (`check_name` and `status` filters).
pub(crate) fn check_runs(ctx: &Ctx<'_>, req: &ApiRequest, reference: &str) -> Reply {
    let Some(sha) = git::resolve_commit(&ctx.repo.git_dir, reference) else {
        return no_commit(reference);
    };
    let name = req.q("check_name");
    let status = req.q("status");
    let all: Vec<Value> = ctx
        .repo
        .check_runs
        .iter()
        .filter(|r| r.sha == sha)
        .filter(|r| name.is_none_or(|n| r.name == n))
        .filter(|r| status.is_none_or(|s| r.status == s))
        .map(|r| json::check_run(ctx.api, ctx.repo, r))
        .collect();
    let (runs, link) = page(req, ctx.api, &all);
    let reply = Reply::ok(json!({ "total_count": all.len(), "check_runs": runs }));
    match link {
        Some(l) => reply.header("link", l),
        None => reply,
    }
}
