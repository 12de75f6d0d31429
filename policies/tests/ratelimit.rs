//! The per-cluster token bucket under paused tokio time.

use std::time::Duration;

use policies::ratelimit::TokenBucket;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn twenty_requests_at_five_per_second_with_a_burst_of_ten_take_two_seconds() {
    let bucket = TokenBucket::new(5.0, 10);
    let start = Instant::now();
    let mut at = Vec::new();
    for _ in 0..20 {
        bucket.acquire().await;
        at.push(start.elapsed());
    }
    assert!(
        at[9] < Duration::from_millis(1),
        "the burst is immediate: {at:?}"
    );
    assert!(at[19] >= Duration::from_secs(2), "{at:?}");
    assert!(at[19] < Duration::from_millis(2100), "{at:?}");
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_share_one_budget() {
    let bucket = std::sync::Arc::new(TokenBucket::new(5.0, 10));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let b = bucket.clone();
        tasks.spawn(async move {
            b.acquire().await;
            Instant::now()
        });
    }
    let mut last = start;
    while let Some(done) = tasks.join_next().await {
        if let Ok(t) = done {
            last = last.max(t);
        }
    }
    assert!(last - start >= Duration::from_secs(2), "{:?}", last - start);
}
