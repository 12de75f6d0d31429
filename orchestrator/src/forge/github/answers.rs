//! Reading GitHub's answers: errors and rate limits into [`ForgeError`]s, back-off, PR
//! lifecycle, reviews and checks.

use super::*;

/// The pause before retry `attempt + 1`: `base`, tripled each time, with up to a quarter of
/// jitter, never longer than the budget.
pub(super) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let capped = policy
        .base
        .saturating_mul(3u32.saturating_pow(attempt.min(16)))
        .min(policy.budget);
    // Jitter: up to a quarter of the wait, from the clock's nanoseconds (no RNG needed).
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    );
    let quarter = capped.as_millis() as u64 / 4;
    capped + Duration::from_millis(if quarter == 0 { 0 } else { nanos % quarter })
}

/// Classify an error octocrab returned before ringmaster saw a response: GitHub's own answers
/// (a refused installation token, a JWT GitHub cannot decode) are permanent with GitHub's
/// message; transport failures and 5xx are transient.
pub(super) fn octocrab_error(
    context: &str,
    e: &octocrab::Error,
    policy: &RetryPolicy,
) -> ForgeError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code;
            let mut text = format!("{context}: GitHub answered {status}: {}", source.message);
            if source.message.contains("JSON web token") {
                text.push_str(" (GitHub App authentication failed: check forge.github.app appId, privateKeyFile and installationId)");
            }
            if status.is_server_error() {
                ForgeError::Transient(text)
            } else if let Some(wait) = source.headers.as_ref().and_then(|h| {
                rate_limit_wait(
                    status,
                    h,
                    &json!({ "message": source.message }),
                    policy.secondary_default,
                )
            }) {
                ForgeError::RateLimited { retry_after: wait }
            } else {
                ForgeError::Permanent(text)
            }
        }
        other => ForgeError::Transient(format!("{context}: {other}")),
    }
}

pub(super) fn message(v: &Value) -> String {
    let m = v["message"].as_str().unwrap_or("").to_owned();
    let errors: Vec<String> = v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        m
    } else {
        format!("{m}: {}", errors.join("; "))
    }
}

/// How long GitHub asks us to wait, if this is a rate-limit answer (a 429, or a 403 with an
/// exhausted primary limit, a `Retry-After` or a rate-limit message): `Retry-After` first, then
/// `x-ratelimit-reset` when the primary limit is exhausted, then the secondary default; kept
/// within [`MIN_RETRY_AFTER`]..=[`MAX_RETRY_AFTER`].
pub(super) fn rate_limit_wait(
    status: StatusCode,
    head: &HeaderMap,
    body: &Value,
    secondary_default: Duration,
) -> Option<Duration> {
    rate_limit_header_wait(status, head, body, secondary_default)
        .map(|d| d.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER))
}

pub(super) fn rate_limit_header_wait(
    status: StatusCode,
    head: &HeaderMap,
    body: &Value,
    secondary_default: Duration,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |n: &str| head.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining").as_deref() == Some("0") {
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    let text = message(body).to_lowercase();
    if status == StatusCode::TOO_MANY_REQUESTS || text.contains("rate limit") {
        return Some(secondary_default);
    }
    None
}

pub(super) fn lifecycle(pr: &Value) -> PrLifecycle {
    if pr["merged"].as_bool() == Some(true)
        || !pr["merged_at"].is_null() && pr["merged_at"].is_string()
    {
        PrLifecycle::Merged
    } else if pr["state"].as_str() == Some("closed") {
        PrLifecycle::Closed
    } else {
        PrLifecycle::Open
    }
}

/// Latest review per reviewer (comments aside): approvals of `head`, and change requests.
pub fn review_verdicts(reviews: &[Value], head: &str) -> (Vec<String>, Vec<String>) {
    let mut latest: Vec<(String, String, String)> = Vec::new(); // login, state, commit
    for r in reviews {
        let (Some(login), Some(state)) = (r["user"]["login"].as_str(), r["state"].as_str()) else {
            continue;
        };
        if state == "COMMENTED" || state == "PENDING" {
            continue;
        }
        let commit = r["commit_id"].as_str().unwrap_or("").to_owned();
        latest.retain(|(l, _, _)| l != login);
        latest.push((login.to_owned(), state.to_owned(), commit));
    }
    let approvals = latest
        .iter()
        .filter(|(_, s, c)| s == "APPROVED" && c == head)
        .map(|(l, _, _)| l.clone())
        .collect();
    let changes = latest
        .iter()
        .filter(|(_, s, _)| s == "CHANGES_REQUESTED")
        .map(|(l, _, _)| l.clone())
        .collect();
    (approvals, changes)
}

/// Combined statuses and check runs of a commit.
pub fn combine_checks(status: &Value, runs: &Value) -> Checks {
    let mut seen = false;
    let mut pending = false;
    let mut failed = false;
    if status["total_count"].as_u64().unwrap_or(0) > 0 {
        seen = true;
        match status["state"].as_str() {
            Some("success") => {}
            Some("pending") => pending = true,
            _ => failed = true,
        }
    }
    for run in runs["check_runs"].as_array().into_iter().flatten() {
        seen = true;
        if run["status"].as_str() != Some("completed") {
            pending = true;
            continue;
        }
        match run["conclusion"].as_str() {
            Some("success" | "neutral" | "skipped") => {}
            _ => failed = true,
        }
    }
    match (seen, failed, pending) {
        (false, _, _) => Checks::None,
        (_, true, _) => Checks::Failure,
        (_, _, true) => Checks::Pending,
        _ => Checks::Success,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_carries_a_token() {
        assert!(api_url_is_safe("https://api.github.com"));
        assert!(api_url_is_safe("http://127.0.0.1:8080"));
        assert!(api_url_is_safe("http://[::1]:9/api/v3"));
        assert!(!api_url_is_safe("http://github.example.com/api/v3"));
        assert!(!api_url_is_safe("http://127.0.0.1.nip.io/"));
    }

    #[test]
    fn the_latest_review_per_reviewer_counts_and_only_for_the_head() {
        let r = |login: &str, state: &str, commit: &str| json!({"user": {"login": login}, "state": state, "commit_id": commit});
        let reviews = vec![
            r("alice", "APPROVED", "old"),
            r("bob", "CHANGES_REQUESTED", "old"),
            r("bob", "COMMENTED", "new"),
            r("carol", "APPROVED", "new"),
            r("alice", "APPROVED", "old"),
        ];
        let (approvals, changes) = review_verdicts(&reviews, "new");
        assert_eq!(approvals, ["carol"], "alice approved an older head");
        assert_eq!(
            changes,
            ["bob"],
            "a comment does not clear a change request"
        );
        let reviews = vec![
            r("bob", "CHANGES_REQUESTED", "new"),
            r("bob", "APPROVED", "new"),
        ];
        assert_eq!(
            review_verdicts(&reviews, "new"),
            (vec!["bob".to_owned()], vec![])
        );
    }

    #[test]
    fn checks_combine_statuses_and_runs() {
        let none = json!({"total_count": 0, "state": "pending"});
        let ok = json!({"total_count": 1, "state": "success"});
        let runs =
            |s: &str, c: Option<&str>| json!({"check_runs": [{"status": s, "conclusion": c}]});
        assert_eq!(
            combine_checks(&none, &json!({"check_runs": []})),
            Checks::None
        );
        assert_eq!(
            combine_checks(&ok, &json!({"check_runs": []})),
            Checks::Success
        );
        assert_eq!(
            combine_checks(&ok, &runs("in_progress", None)),
            Checks::Pending
        );
        assert_eq!(
            combine_checks(&ok, &runs("completed", Some("failure"))),
            Checks::Failure
        );
        assert_eq!(
            combine_checks(
                &json!({"total_count": 2, "state": "failure"}),
                &runs("completed", Some("success"))
            ),
            Checks::Failure
        );
    }

    #[test]
    fn rate_limit_waits_follow_github_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        let d = Duration::from_secs(60);
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &h, &Value::Null, d),
            Some(Duration::from_secs(7))
        );
        let body = json!({"message": "You have exceeded a secondary rate limit."});
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), &body, d),
            Some(d)
        );
        assert_eq!(
            rate_limit_wait(
                StatusCode::FORBIDDEN,
                &HeaderMap::new(),
                &json!({"message": "Resource not accessible"}),
                d
            ),
            None
        );
        assert_eq!(
            rate_limit_wait(StatusCode::NOT_FOUND, &h, &Value::Null, d),
            None
        );
        // Kept within a second and an hour.
        h.insert("retry-after", HeaderValue::from_static("0"));
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &h, &Value::Null, d),
            Some(MIN_RETRY_AFTER)
        );
        h.insert("retry-after", HeaderValue::from_static("86400"));
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &h, &Value::Null, d),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn backoffs_triple_and_stay_within_the_budget() {
        let policy = RetryPolicy::default();
        let first = backoff(&policy, 0);
        let second = backoff(&policy, 1);
        assert!((Duration::from_millis(250)..=Duration::from_millis(312)).contains(&first));
        assert!((Duration::from_millis(750)..=Duration::from_millis(937)).contains(&second));
        assert!(backoff(&policy, 10) <= policy.budget * 5 / 4);
    }
}
