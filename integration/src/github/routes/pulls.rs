//! Pull requests: list, create, read, update, merge, reviews and review requests.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiRequest, Reply, paginated};
use crate::github::git::{self, MergeMethod};
use crate::github::json;
use crate::github::model::{API_USER, Ctx, MergeRefusal, Pull, PullState, Review};

fn comment_count(ctx: &Ctx<'_>, number: u64) -> usize {
    ctx.repo
        .comments
        .iter()
        .filter(|c| c.number == number)
        .count()
}

fn render(ctx: &Ctx<'_>, pull: &Pull, detail: bool) -> Value {
    json::pull(
        ctx.api,
        ctx.repo,
        pull,
        comment_count(ctx, pull.number),
        detail,
    )
}

fn render_number(ctx: &Ctx<'_>, number: u64, detail: bool) -> Reply {
    match ctx.repo.pulls.get(&number) {
        Some(p) => Reply::ok(render(ctx, p, detail)),
        None => Reply::not_found(),
    }
}

/// `head` as `OWNER:branch` or `branch`: the branch, if the owner is this repository's.
fn own_branch<'h>(ctx: &Ctx<'_>, head: &'h str) -> Option<&'h str> {
    match head.split_once(':') {
        Some((owner, branch)) => owner
            .eq_ignore_ascii_case(&ctx.repo.owner)
            .then_some(branch),
        None => Some(head),
    }
}

/// `GET /repos/{o}/{r}/pulls`.
pub(crate) fn list(ctx: &Ctx<'_>, req: &ApiRequest) -> Reply {
    let state = req.q("state").unwrap_or("open");
    if !["open", "closed", "all"].contains(&state) {
        return Reply::field("PullRequest", "state", "invalid");
    }
    // GitHub filters by head only in the `OWNER:branch` form; a bare branch name is ignored.
    let head = req.q("head").and_then(|h| h.split_once(':'));
    let base = req.q("base");
    let sort = req.q("sort").unwrap_or("created");
    let desc = match req.q("direction") {
        Some(d) => d == "desc",
        None => sort == "created",
    };
    let mut pulls: Vec<&Pull> = ctx
        .repo
        .pulls
        .values()
        .filter(|p| state == "all" || p.state.as_str() == state)
        .filter(|p| {
            head.is_none_or(|(owner, branch)| {
                owner.eq_ignore_ascii_case(&ctx.repo.owner)
                    && (branch.is_empty() || p.head_ref == branch)
            })
        })
        .filter(|p| base.is_none_or(|b| p.base_ref == b))
        .collect();
    match sort {
        "updated" => pulls.sort_by_key(|p| (p.updated_at, p.number)),
        _ => pulls.sort_by_key(|p| p.number),
    }
    if desc {
        pulls.reverse();
    }
    let items: Vec<Value> = pulls.iter().map(|p| render(ctx, p, false)).collect();
    paginated(req, ctx.api, &items)
}

fn string_field(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

/// `POST /repos/{o}/{r}/pulls`.
pub(crate) fn create(ctx: &mut Ctx<'_>, req: &ApiRequest) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(title) = string_field(&body, "title") else {
        return Reply::field("PullRequest", "title", "missing_field");
    };
    let Some(head) = string_field(&body, "head") else {
        return Reply::field("PullRequest", "head", "missing_field");
    };
    let Some(base) = string_field(&body, "base") else {
        return Reply::field("PullRequest", "base", "missing_field");
    };
    let dir = ctx.repo.git_dir.clone();
    let Some(branch) = own_branch(ctx, &head).map(str::to_string) else {
        return Reply::field("PullRequest", "head", "invalid");
    };
    let Some(head_sha) = git::branch_sha(&dir, &branch) else {
        return Reply::field("PullRequest", "head", "invalid");
    };
    let Some(base_sha) = git::branch_sha(&dir, &base) else {
        return Reply::field("PullRequest", "base", "invalid");
    };
    let label = format!("{}:{branch}", ctx.repo.owner);
    if ctx.repo.open_pull_for(&branch, &base).is_some() {
        return Reply::custom(
            "PullRequest",
            &format!("A pull request already exists for {label}."),
        );
    }
    if git::commits_ahead(&dir, &base_sha, &head_sha) == Some(0) {
        return Reply::custom(
            "PullRequest",
            &format!("No commits between {base} and {branch}"),
        );
    }
    let number = ctx.repo.next_number;
    ctx.repo.next_number += 1;
    let id = ctx.next_id();
    let pull = Pull {
        number,
        id,
        title,
        body: string_field(&body, "body"),
        user: API_USER.to_string(),
        state: PullState::Open,
        draft: body.get("draft").and_then(Value::as_bool).unwrap_or(false),
        head_ref: branch,
        base_ref: base,
        head_sha,
        closed_base_sha: None,
        created_at: ctx.now,
        updated_at: ctx.now,
        closed_at: None,
        merged_at: None,
        merged_by: None,
        merge_commit_sha: None,
        labels: Vec::new(),
        requested_reviewers: Vec::new(),
        requested_teams: Vec::new(),
        reviews: Vec::new(),
    };
    let rendered = render(ctx, &pull, true);
    ctx.repo.pulls.insert(number, pull);
    if *ctx.duplicate_on_create > 0 {
        // The pull request exists, but the client is told it does not (a lost response).
        *ctx.duplicate_on_create -= 1;
        return Reply::custom(
            "PullRequest",
            &format!("A pull request already exists for {label}."),
        );
    }
    let location = format!("{}/repos/{}/pulls/{number}", ctx.api, ctx.repo.full_name());
    Reply::with(StatusCode::CREATED, rendered).header("location", location)
}

/// `GET /repos/{o}/{r}/pulls/{n}`.
pub(crate) fn get(ctx: &Ctx<'_>, number: u64) -> Reply {
    render_number(ctx, number, true)
}

/// `PATCH /repos/{o}/{r}/pulls/{n}`: title, body, state, base.
pub(crate) fn update(ctx: &mut Ctx<'_>, req: &ApiRequest, number: u64) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(pull) = ctx.repo.pulls.get(&number) else {
        return Reply::not_found();
    };
    let (head_ref, base_ref, merged, state) = (
        pull.head_ref.clone(),
        pull.base_ref.clone(),
        pull.merged(),
        pull.state,
    );
    let new_base = string_field(&body, "base");
    if let Some(b) = &new_base
        && git::branch_sha(&ctx.repo.git_dir, b).is_none()
    {
        return Reply::field("PullRequest", "base", "invalid");
    }
    match string_field(&body, "state").as_deref() {
        None => {}
        Some("closed") => {
            ctx.repo.close(number, ctx.now);
        }
        Some("open") if state == PullState::Closed => {
            if merged {
                return Reply::custom("PullRequest", "Cannot reopen a merged pull request.");
            }
            let base = new_base.clone().unwrap_or(base_ref);
            if ctx.repo.open_pull_for(&head_ref, &base).is_some() {
                return Reply::custom(
                    "PullRequest",
                    &format!(
                        "A pull request already exists for {}:{head_ref}.",
                        ctx.repo.owner
                    ),
                );
            }
            if let Some(p) = ctx.repo.pulls.get_mut(&number) {
                p.state = PullState::Open;
                p.closed_at = None;
                p.closed_base_sha = None;
            }
        }
        Some("open") => {}
        Some(_) => return Reply::field("PullRequest", "state", "invalid"),
    }
    let now = ctx.now;
    if let Some(p) = ctx.repo.pulls.get_mut(&number) {
        if let Some(t) = string_field(&body, "title") {
            p.title = t;
        }
        if let Some(b) = body.get("body") {
            p.body = b.as_str().map(str::to_string);
        }
        if let Some(b) = new_base {
            p.base_ref = b;
        }
        p.updated_at = now;
    }
    render_number(ctx, number, true)
}

/// `GET /repos/{o}/{r}/pulls/{n}/merge`: 204 if merged, else 404.
pub(crate) fn is_merged(ctx: &Ctx<'_>, number: u64) -> Reply {
    match ctx.repo.pulls.get(&number) {
        Some(p) if p.merged() => Reply::empty(StatusCode::NO_CONTENT),
        _ => Reply::not_found(),
    }
}

/// `PUT /repos/{o}/{r}/pulls/{n}/merge`: a real merge in the git repository.
pub(crate) fn merge(ctx: &mut Ctx<'_>, req: &ApiRequest, number: u64) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let method = match body.get("merge_method").and_then(Value::as_str) {
        None => MergeMethod::Merge,
        Some(m) => match MergeMethod::parse(m) {
            Some(m) => m,
            None => return Reply::field("PullRequest", "merge_method", "invalid"),
        },
    };
    let expected = string_field(&body, "sha");
    let title = string_field(&body, "commit_title");
    let now = ctx.now;
    match ctx.repo.merge(
        number,
        method,
        expected.as_deref(),
        title.as_deref(),
        API_USER,
        now,
    ) {
        Ok(sha) => Reply::ok(json!({
            "sha": sha,
            "merged": true,
            "message": "Pull Request successfully merged",
        })),
        Err(MergeRefusal::NotFound) => Reply::not_found(),
        Err(MergeRefusal::NotMergeable(msg)) => Reply::error(StatusCode::METHOD_NOT_ALLOWED, msg),
        Err(MergeRefusal::HeadModified) => Reply::error(
            StatusCode::CONFLICT,
            "Head branch was modified. Review and try the merge again.",
        ),
        Err(MergeRefusal::BaseMoved) => Reply::error(
            StatusCode::CONFLICT,
            "Base branch was modified. Review and try the merge again.",
        ),
        Err(MergeRefusal::Git(m)) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

/// `GET /repos/{o}/{r}/pulls/{n}/reviews`.
pub(crate) fn reviews(ctx: &Ctx<'_>, req: &ApiRequest, number: u64) -> Reply {
    let Some(pull) = ctx.repo.pulls.get(&number) else {
        return Reply::not_found();
    };
    let items: Vec<Value> = pull
        .reviews
        .iter()
        .map(|r| json::review(ctx.api, ctx.repo, number, r))
        .collect();
    paginated(req, ctx.api, &items)
}

/// `POST /repos/{o}/{r}/pulls/{n}/reviews` as the token's user.
pub(crate) fn create_review(ctx: &mut Ctx<'_>, req: &ApiRequest, number: u64) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(pull) = ctx.repo.pulls.get(&number) else {
        return Reply::not_found();
    };
    let state = match body.get("event").and_then(Value::as_str) {
        None => "PENDING",
        Some("APPROVE") => "APPROVED",
        Some("REQUEST_CHANGES") => "CHANGES_REQUESTED",
        Some("COMMENT") => "COMMENTED",
        Some(_) => return Reply::field("PullRequestReview", "event", "invalid"),
    };
    let text = string_field(&body, "body").unwrap_or_default();
    if pull.user.eq_ignore_ascii_case(API_USER) {
        match state {
            "APPROVED" => {
                return Reply::custom("PullRequestReview", "Can not approve your own pull request");
            }
            "CHANGES_REQUESTED" => {
                return Reply::custom(
                    "PullRequestReview",
                    "Can not request changes on your own pull request",
                );
            }
            _ => {}
        }
    }
    if state != "APPROVED" && state != "PENDING" && text.is_empty() {
        return Reply::field("PullRequestReview", "body", "missing_field");
    }
    let head = ctx.repo.head_sha(pull);
    let commit_id = match string_field(&body, "commit_id") {
        Some(c) => match git::resolve_commit(&ctx.repo.git_dir, &c) {
            Some(sha) => sha,
            None => return Reply::field("PullRequestReview", "commit_id", "invalid"),
        },
        None => head,
    };
    let review = Review {
        id: ctx.next_id(),
        user: API_USER.to_string(),
        body: text,
        state: state.to_string(),
        commit_id,
        submitted_at: ctx.now,
    };
    let rendered = json::review(ctx.api, ctx.repo, number, &review);
    ctx.repo.add_review(number, review);
    Reply::ok(rendered)
}

/// `GET /repos/{o}/{r}/pulls/{n}/requested_reviewers`.
pub(crate) fn requested_reviewers(ctx: &Ctx<'_>, number: u64) -> Reply {
    let Some(pull) = ctx.repo.pulls.get(&number) else {
        return Reply::not_found();
    };
    Reply::ok(json!({
        "users": pull.requested_reviewers.iter().map(|u| json::user(ctx.api, u)).collect::<Vec<_>>(),
        "teams": pull.requested_teams.iter().map(|t| json::team(ctx.api, &ctx.repo.owner, t)).collect::<Vec<_>>(),
    }))
}

fn names(body: &Value, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `POST` (add) or `DELETE` (remove) `/repos/{o}/{r}/pulls/{n}/requested_reviewers`.
pub(crate) fn change_reviewers(
    ctx: &mut Ctx<'_>,
    req: &ApiRequest,
    number: u64,
    add: bool,
) -> Reply {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let users = names(&body, "reviewers");
    let teams = names(&body, "team_reviewers");
    let full = ctx.repo.full_name();
    let Some(pull) = ctx.repo.pulls.get_mut(&number) else {
        return Reply::not_found();
    };
    if add {
        if users.iter().any(|u| u.eq_ignore_ascii_case(&pull.user)) {
            return Reply::custom(
                "PullRequest",
                "Review cannot be requested from pull request author.",
            );
        }
        // Teams are slugs; `org/slug` is not a team GitHub knows.
        if teams.iter().any(|t| t.contains('/') || t.is_empty()) {
            return Reply::custom(
                "PullRequest",
                &format!(
                    "Reviews may only be requested from collaborators. One or more of the teams you specified is not a collaborator of the {full} repository."
                ),
            );
        }
        for u in users {
            if !pull
                .requested_reviewers
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&u))
            {
                pull.requested_reviewers.push(u);
            }
        }
        for t in teams {
            if !pull
                .requested_teams
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&t))
            {
                pull.requested_teams.push(t);
            }
        }
    } else {
        pull.requested_reviewers
            .retain(|r| !users.iter().any(|u| u.eq_ignore_ascii_case(r)));
        pull.requested_teams
            .retain(|r| !teams.iter().any(|t| t.eq_ignore_ascii_case(r)));
    }
    pull.updated_at = ctx.now;
    let reply = render_number(ctx, number, false);
    if add {
        Reply {
            status: StatusCode::CREATED,
            ..reply
        }
    } else {
        reply
    }
}
