//! GitHub's JSON shapes, with every field octocrab 0.54's models require.
//!
//! URLs point at the fake (`api`); `html_url`s use the same origin, since there is no web UI.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::model::{CheckRunRec, CommitStatus, IssueComment, LabelDef, Pull, Repo, Review};

/// RFC 3339 in UTC with seconds, as GitHub writes timestamps (`2011-01-26T19:01:12Z`).
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(ts(t)))
}

/// A stable numeric id for a user or team name (the fake keeps no user table).
pub(crate) fn stable_id(kind: &str, name: &str) -> u64 {
    let digest = Sha256::digest(format!("{kind}:{}", name.to_ascii_lowercase()).as_bytes());
    let n = digest
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    10_000_000 + n % 90_000_000
}

/// A GraphQL-style node id.
pub(crate) fn node_id(prefix: &str, id: u64) -> String {
    format!("{prefix}_kwDO{id:010}")
}

/// Percent-encodes a path segment (labels may contain spaces and slashes).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Adds the fields of `more` to the object `v` (one `json!` per half keeps macro recursion low).
fn extend(v: &mut Value, more: Value) {
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), more) {
        obj.extend(more);
    }
}

fn account(api: &str, login: &str, kind: &str) -> Value {
    let id = stable_id("user", login);
    let u = format!("{api}/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": node_id("U", id),
        "avatar_url": format!("{api}/avatars/u/{id}?v=4"),
        "gravatar_id": "",
        "url": u,
        "html_url": format!("{api}/{login}"),
        "followers_url": format!("{u}/followers"),
        "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"),
        "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"),
        "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"),
        "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// A user (`simple-user`); logins ending in `[bot]` are bots.
pub(crate) fn user(api: &str, login: &str) -> Value {
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    account(api, login, kind)
}

/// The account owning a repository.
pub(crate) fn owner(api: &str, login: &str) -> Value {
    account(api, login, "Organization")
}

/// `GET /repos/{owner}/{repo}`.
pub(crate) fn repository(api: &str, repo: &Repo, pushed_at: DateTime<Utc>) -> Value {
    let full = repo.full_name();
    let u = format!("{api}/repos/{full}");
    let clone_url = format!("file://{}", repo.git_dir.display());
    let mut v = json!({
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": full,
        "private": true,
        "owner": owner(api, &repo.owner),
        "html_url": format!("{api}/{full}"),
        "description": null,
        "fork": false,
        "url": u,
        "archive_url": format!("{u}/{{archive_format}}{{/ref}}"),
        "branches_url": format!("{u}/branches{{/branch}}"),
        "comments_url": format!("{u}/comments{{/number}}"),
        "commits_url": format!("{u}/commits{{/sha}}"),
        "contents_url": format!("{u}/contents/{{+path}}"),
        "git_refs_url": format!("{u}/git/refs{{/sha}}"),
        "issues_url": format!("{u}/issues{{/number}}"),
        "labels_url": format!("{u}/labels{{/name}}"),
        "pulls_url": format!("{u}/pulls{{/number}}"),
        "statuses_url": format!("{u}/statuses/{{sha}}"),
    });
    extend(
        &mut v,
        json!({
        "clone_url": clone_url,
        "git_url": clone_url,
        "ssh_url": clone_url,
        "homepage": null,
        "size": 0,
        "default_branch": repo.default_branch,
        "open_issues_count": repo.pulls.values().filter(|p| p.state.as_str() == "open").count(),
        "visibility": "private",
        "archived": false,
        "disabled": false,
        "has_issues": true,
        "has_projects": false,
        "has_wiki": false,
        "has_pages": false,
        "has_downloads": false,
        "is_template": false,
        "topics": [],
        "created_at": ts(repo.created_at),
        "updated_at": ts(pushed_at),
        "pushed_at": ts(pushed_at),
        "permissions": { "admin": false, "maintain": false, "push": true, "triage": true, "pull": true },
        "allow_merge_commit": true,
        "allow_squash_merge": true,
        "allow_rebase_merge": true,
        "allow_auto_merge": false,
        "delete_branch_on_merge": false,
        "allow_update_branch": false,
        "allow_forking": false,
        }),
    );
    v
}

/// The repository inside a check run's pull request references.
fn minimal_repo(api: &str, repo: &Repo) -> Value {
    json!({
        "id": repo.id,
        "url": format!("{api}/repos/{}", repo.full_name()),
        "name": repo.name,
    })
}

fn href(h: String) -> Value {
    json!({ "href": h })
}

fn pull_urls(api: &str, repo: &Repo, number: u64) -> (String, String, String) {
    let full = repo.full_name();
    (
        format!("{api}/repos/{full}/pulls/{number}"),
        format!("{api}/{full}/pull/{number}"),
        format!("{api}/repos/{full}/issues/{number}"),
    )
}

/// A team (`GET .../requested_reviewers` and a pull request's `requested_teams`).
pub(crate) fn team(api: &str, org: &str, slug: &str) -> Value {
    let id = stable_id("team", &format!("{org}/{slug}"));
    let u = format!("{api}/organizations/{}/team/{id}", stable_id("user", org));
    json!({
        "id": id,
        "node_id": node_id("T", id),
        "url": u,
        "html_url": format!("{api}/orgs/{org}/teams/{slug}"),
        "name": slug,
        "slug": slug,
        "description": null,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": format!("{u}/members{{/member}}"),
        "repositories_url": format!("{u}/repos"),
        "parent": null,
    })
}

/// A label.
pub(crate) fn label(api: &str, repo: &Repo, def: &LabelDef) -> Value {
    json!({
        "id": def.id,
        "node_id": node_id("LA", def.id),
        "url": format!("{api}/repos/{}/labels/{}", repo.full_name(), encode_segment(&def.name)),
        "name": def.name,
        "color": def.color,
        "default": false,
        "description": null,
    })
}

/// The labels of a pull request, in the order they were added.
pub(crate) fn pull_labels(api: &str, repo: &Repo, pull: &Pull) -> Vec<Value> {
    pull.labels
        .iter()
        .filter_map(|name| repo.labels.get(&name.to_lowercase()))
        .map(|def| label(api, repo, def))
        .collect()
}

fn branch_end(api: &str, repo: &Repo, branch: &str, sha: String) -> Value {
    json!({
        "label": format!("{}:{branch}", repo.owner),
        "ref": branch,
        "sha": sha,
        "user": owner(api, &repo.owner),
        "repo": repository(api, repo, repo.created_at),
    })
}

/// A pull request. `detail` adds what only `GET /pulls/{n}` returns (mergeability, counts).
pub(crate) fn pull(api: &str, repo: &Repo, pull: &Pull, comments: usize, detail: bool) -> Value {
    let (url, html, issue) = pull_urls(api, repo, pull.number);
    let full = repo.full_name();
    let head_sha = repo.head_sha(pull);
    let base_sha = repo.base_sha(pull);
    let statuses = format!("{api}/repos/{full}/statuses/{head_sha}");
    let mut v = json!({
        "url": url,
        "id": pull.id,
        "node_id": node_id("PR", pull.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": issue,
        "commits_url": format!("{url}/commits"),
        "review_comments_url": format!("{url}/comments"),
        "review_comment_url": format!("{api}/repos/{full}/pulls/comments{{/number}}"),
        "comments_url": format!("{issue}/comments"),
        "statuses_url": statuses,
        "number": pull.number,
        "state": pull.state.as_str(),
        "locked": false,
        "title": pull.title,
        "user": user(api, &pull.user),
        "body": pull.body,
        "labels": pull_labels(api, repo, pull),
        "milestone": null,
        "active_lock_reason": null,
        "created_at": ts(pull.created_at),
        "updated_at": ts(pull.updated_at),
        "closed_at": opt_ts(pull.closed_at),
        "merged_at": opt_ts(pull.merged_at),
        "merge_commit_sha": pull.merge_commit_sha,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": pull.requested_reviewers.iter().map(|u| user(api, u)).collect::<Vec<_>>(),
        "requested_teams": pull.requested_teams.iter().map(|t| team(api, &repo.owner, t)).collect::<Vec<_>>(),
    });
    let links = json!({
        "self": href(url.clone()),
        "html": href(html.clone()),
        "issue": href(issue.clone()),
        "comments": href(format!("{issue}/comments")),
        "review_comments": href(format!("{url}/comments")),
        "review_comment": href(format!("{api}/repos/{full}/pulls/comments{{/number}}")),
        "commits": href(format!("{url}/commits")),
        "statuses": href(format!("{api}/repos/{full}/statuses/{head_sha}")),
    });
    extend(
        &mut v,
        json!({
        "head": branch_end(api, repo, &pull.head_ref, head_sha.clone()),
        "base": branch_end(api, repo, &pull.base_ref, base_sha.clone()),
        "_links": links,
        "author_association": "MEMBER",
        "auto_merge": null,
        "draft": pull.draft,
        }),
    );
    if detail && let Some(obj) = v.as_object_mut() {
        let open = pull.state.as_str() == "open";
        let mergeable = if open {
            super::git::mergeable(&repo.git_dir, &base_sha, &head_sha)
        } else {
            None
        };
        let mergeable_state = match (open, mergeable) {
            (true, _) if pull.draft => "draft",
            (true, Some(true)) => "clean",
            (true, Some(false)) => "dirty",
            _ => "unknown",
        };
        let commits = super::git::commits_ahead(&repo.git_dir, &base_sha, &head_sha).unwrap_or(0);
        obj.insert("merged".into(), json!(pull.merged()));
        obj.insert("mergeable".into(), json!(mergeable));
        obj.insert("rebaseable".into(), json!(mergeable));
        obj.insert("mergeable_state".into(), json!(mergeable_state));
        obj.insert(
            "merged_by".into(),
            pull.merged_by
                .as_deref()
                .map_or(Value::Null, |u| user(api, u)),
        );
        obj.insert("comments".into(), json!(comments));
        obj.insert("review_comments".into(), json!(0));
        obj.insert("maintainer_can_modify".into(), json!(false));
        obj.insert("commits".into(), json!(commits));
        obj.insert("additions".into(), json!(0));
        obj.insert("deletions".into(), json!(0));
        obj.insert("changed_files".into(), json!(0));
    }
    v
}

/// The issue view of a pull request (`GET /issues/{n}`).
pub(crate) fn issue(api: &str, repo: &Repo, pull: &Pull, comments: usize) -> Value {
    let (url, html, issue) = pull_urls(api, repo, pull.number);
    let full = repo.full_name();
    json!({
        "id": pull.id,
        "node_id": node_id("I", pull.id),
        "url": issue,
        "repository_url": format!("{api}/repos/{full}"),
        "labels_url": format!("{issue}/labels{{/name}}"),
        "comments_url": format!("{issue}/comments"),
        "events_url": format!("{issue}/events"),
        "html_url": html,
        "number": pull.number,
        "state": pull.state.as_str(),
        "state_reason": null,
        "title": pull.title,
        "body": pull.body,
        "user": user(api, &pull.user),
        "labels": pull_labels(api, repo, pull),
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "locked": false,
        "active_lock_reason": null,
        "comments": comments,
        "pull_request": {
            "url": url,
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "merged_at": opt_ts(pull.merged_at),
        },
        "closed_at": opt_ts(pull.closed_at),
        "created_at": ts(pull.created_at),
        "updated_at": ts(pull.updated_at),
        "author_association": "MEMBER",
    })
}

/// A pull request review.
pub(crate) fn review(api: &str, repo: &Repo, number: u64, r: &Review) -> Value {
    let (url, html, _) = pull_urls(api, repo, number);
    let review_html = format!("{html}#pullrequestreview-{}", r.id);
    json!({
        "id": r.id,
        "node_id": node_id("PRR", r.id),
        "user": user(api, &r.user),
        "body": r.body,
        "state": r.state,
        "html_url": review_html,
        "pull_request_url": url,
        "author_association": "MEMBER",
        "_links": { "html": href(review_html.clone()), "pull_request": href(url.clone()) },
        "submitted_at": ts(r.submitted_at),
        "commit_id": r.commit_id,
    })
}

/// An issue comment.
pub(crate) fn issue_comment(api: &str, repo: &Repo, c: &IssueComment) -> Value {
    let (_, html, issue) = pull_urls(api, repo, c.number);
    json!({
        "id": c.id,
        "node_id": node_id("IC", c.id),
        "url": format!("{api}/repos/{}/issues/comments/{}", repo.full_name(), c.id),
        "html_url": format!("{html}#issuecomment-{}", c.id),
        "issue_url": issue,
        "body": c.body,
        "user": user(api, &c.user),
        "created_at": ts(c.created_at),
        "updated_at": ts(c.updated_at),
        "author_association": "MEMBER",
        "performed_via_github_app": null,
    })
}

/// A commit status.
pub(crate) fn status(api: &str, repo: &Repo, s: &CommitStatus) -> Value {
    json!({
        "url": format!("{api}/repos/{}/statuses/{}", repo.full_name(), s.sha),
        "avatar_url": null,
        "id": s.id,
        "node_id": node_id("SC", s.id),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": ts(s.created_at),
        "updated_at": ts(s.created_at),
        "creator": user(api, &s.creator),
    })
}

/// A check run; `pulls` are the open pull requests whose head is the run's commit.
pub(crate) fn check_run(api: &str, repo: &Repo, run: &CheckRunRec) -> Value {
    let full = repo.full_name();
    let u = format!("{api}/repos/{full}/check-runs/{}", run.id);
    let pulls: Vec<Value> = repo
        .pulls
        .values()
        .filter(|p| p.state.as_str() == "open" && repo.head_sha(p) == run.sha)
        .map(|p| {
            json!({
                "url": format!("{api}/repos/{full}/pulls/{}", p.number),
                "id": p.id,
                "number": p.number,
                "head": { "ref": p.head_ref, "sha": run.sha, "repo": minimal_repo(api, repo) },
                "base": { "ref": p.base_ref, "sha": repo.base_sha(p), "repo": minimal_repo(api, repo) },
            })
        })
        .collect();
    json!({
        "id": run.id,
        "node_id": node_id("CR", run.id),
        "head_sha": run.sha,
        "external_id": "",
        "url": u,
        "html_url": format!("{api}/{full}/runs/{}", run.id),
        "details_url": format!("{api}/{full}/runs/{}", run.id),
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": ts(run.started_at),
        "completed_at": opt_ts(run.completed_at),
        "output": {
            "title": null,
            "summary": null,
            "text": null,
            "annotations_count": 0,
            "annotations_url": format!("{u}/annotations"),
        },
        "name": run.name,
        "check_suite": { "id": run.id },
        "pull_requests": pulls,
    })
}
