//! GitHub App endpoints, authenticated with the App's JWT (checked by the server before
//! routing): the installation on a repository and installation access tokens.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{ApiRequest, Reply};
use crate::github::app::App;
use crate::github::json::{self, ts};
use crate::github::model::World;

/// Whether the path is one that GitHub authenticates with the App's JWT.
pub(crate) fn is_app_route(segments: &[String]) -> bool {
    match segments {
        [first, ..] if first == "app" => true,
        [repos, _, _, last] => repos == "repos" && last == "installation",
        _ => false,
    }
}

/// What the installation may do (what ringmaster needs).
fn permissions() -> Value {
    json!({
        "checks": "read",
        "contents": "write",
        "issues": "write",
        "metadata": "read",
        "pull_requests": "write",
        "statuses": "read",
    })
}

/// The installation JSON (`installation` in GitHub's schema) for `account`.
fn installation(api: &str, app: &App, account: &str, created_at: DateTime<Utc>) -> Value {
    let owner = json::owner(api, account);
    let id = app.installation_id;
    json!({
        "id": id,
        "account": owner,
        "repository_selection": "all",
        "access_tokens_url": format!("{api}/app/installations/{id}/access_tokens"),
        "repositories_url": format!("{api}/installation/repositories"),
        "html_url": format!("{api}/organizations/{account}/settings/installations/{id}"),
        "app_id": app.id,
        "app_slug": "ringmaster",
        "target_id": owner["id"],
        "target_type": "Organization",
        "permissions": permissions(),
        "events": ["check_run", "pull_request", "pull_request_review", "status"],
        "created_at": ts(created_at),
        "updated_at": ts(created_at),
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null,
    })
}

/// `GET /repos/{owner}/{repo}/installation`: the App is installed on every repository served.
pub(crate) fn repo_installation(world: &World, owner: &str, name: &str) -> Reply {
    let (Some(app), Some(repo)) = (
        world.app.as_ref(),
        world
            .repos
            .get(&crate::github::model::repo_key(owner, name)),
    ) else {
        return Reply::not_found();
    };
    Reply::ok(installation(
        &world.api_url,
        app,
        &repo.owner,
        repo.created_at,
    ))
}

/// `POST /app/installations/{id}/access_tokens`: 201 with a new installation token.
pub(crate) fn access_token(
    world: &mut World,
    req: &ApiRequest,
    installation_id: &str,
    now: DateTime<Utc>,
) -> Reply {
    if let Err(reply) = req.json() {
        return reply;
    }
    let Some(app) = world.app.as_mut() else {
        return Reply::not_found();
    };
    if installation_id.parse::<u64>().ok() != Some(app.installation_id) {
        return Reply::not_found();
    }
    let (token, expires_at) = app.issue(now);
    Reply::with(
        StatusCode::CREATED,
        json!({
            "token": token,
            "expires_at": ts(expires_at),
            "permissions": permissions(),
            "repository_selection": "all",
        }),
    )
}
