//! Repository, branch and ref endpoints, read from the git repository; `/rate_limit`; `/user`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Reply;
use crate::github::git;
use crate::github::json::{self, node_id, ts};
use crate::github::model::{API_USER, Ctx, World};

/// `GET /rate_limit` (free on GitHub: it never counts against the limit).
pub(crate) fn rate_limit(world: &World) -> Reply {
    let r = &world.rate;
    let core = json!({
        "limit": r.limit, "used": r.used, "remaining": r.remaining(), "reset": r.reset, "resource": "core",
    });
    let other = |limit: u64, resource: &str| json!({ "limit": limit, "used": 0, "remaining": limit, "reset": r.reset, "resource": resource });
    Reply::ok(json!({
        "resources": {
            "core": core,
            "search": other(30, "search"),
            "graphql": other(5_000, "graphql"),
            "integration_manifest": other(5_000, "integration_manifest"),
        },
        "rate": core,
    }))
}

/// `GET /user`: the account behind the token.
pub(crate) fn authenticated_user(world: &World) -> Reply {
    Reply::ok(json::user(&world.api_url, API_USER))
}

/// `GET /repos/{owner}/{repo}`.
pub(crate) fn repository(ctx: &Ctx<'_>) -> Reply {
    let pushed = git::branch_sha(&ctx.repo.git_dir, &ctx.repo.default_branch)
        .and_then(|sha| git::commit_info(&ctx.repo.git_dir, &sha))
        .map_or(ctx.repo.created_at, |c| c.committer.date);
    Reply::ok(json::repository(ctx.api, ctx.repo, pushed))
}

fn commit_json(ctx: &Ctx<'_>, info: &git::CommitInfo) -> Value {
    let full = ctx.repo.full_name();
    let api = ctx.api;
    let sig = |p: &git::Person| json!({ "name": p.name, "email": p.email, "date": ts(p.date) });
    json!({
        "sha": info.sha,
        "node_id": format!("C_{}", info.sha),
        "commit": {
            "author": sig(&info.author),
            "committer": sig(&info.committer),
            "message": info.message,
            "tree": { "sha": info.tree, "url": format!("{api}/repos/{full}/git/trees/{}", info.tree) },
            "url": format!("{api}/repos/{full}/git/commits/{}", info.sha),
            "comment_count": 0,
            "verification": { "verified": false, "reason": "unsigned", "signature": null, "payload": null },
        },
        "url": format!("{api}/repos/{full}/commits/{}", info.sha),
        "html_url": format!("{api}/{full}/commit/{}", info.sha),
        "comments_url": format!("{api}/repos/{full}/commits/{}/comments", info.sha),
        "author": null,
        "committer": null,
        "parents": info.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{api}/repos/{full}/commits/{p}"),
            "html_url": format!("{api}/{full}/commit/{p}"),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /repos/{owner}/{repo}/branches/{branch}`.
pub(crate) fn branch(ctx: &Ctx<'_>, name: &str) -> Reply {
    let dir = &ctx.repo.git_dir;
    let Some(info) = git::branch_sha(dir, name).and_then(|sha| git::commit_info(dir, &sha)) else {
        return Reply::error(StatusCode::NOT_FOUND, "Branch not found");
    };
    let full = ctx.repo.full_name();
    let api = ctx.api;
    Reply::ok(json!({
        "name": name,
        "commit": commit_json(ctx, &info),
        "_links": {
            "self": format!("{api}/repos/{full}/branches/{name}"),
            "html": format!("{api}/{full}/tree/{name}"),
        },
        "protected": false,
        "protection": {
            "enabled": false,
            "required_status_checks": { "enforcement_level": "off", "contexts": [], "checks": [] },
        },
        "protection_url": format!("{api}/repos/{full}/branches/{name}/protection"),
    }))
}

fn ref_json(ctx: &Ctx<'_>, branch: &str, sha: &str) -> Value {
    let full = ctx.repo.full_name();
    let api = ctx.api;
    json!({
        "ref": format!("refs/heads/{branch}"),
        "node_id": node_id("REF", json::stable_id("ref", branch)),
        "url": format!("{api}/repos/{full}/git/refs/heads/{branch}"),
        "object": {
            "sha": sha,
            "type": "commit",
            "url": format!("{api}/repos/{full}/git/commits/{sha}"),
        },
    })
}

/// `GET .../git/ref/heads/{branch}` (exact) and `GET .../git/refs/heads/{branch}` (the older
/// form: an exact match, else an array of the branches starting with the name).
pub(crate) fn git_ref(ctx: &Ctx<'_>, branch: &str, exact_only: bool) -> Reply {
    if let Some(sha) = git::branch_sha(&ctx.repo.git_dir, branch) {
        return Reply::ok(ref_json(ctx, branch, &sha));
    }
    if exact_only {
        return Reply::not_found();
    }
    let matches: Vec<Value> = git::branches_with_prefix(&ctx.repo.git_dir, branch)
        .iter()
        .map(|(name, sha)| ref_json(ctx, name, sha))
        .collect();
    if matches.is_empty() {
        Reply::not_found()
    } else {
        Reply::ok(Value::Array(matches))
    }
}
