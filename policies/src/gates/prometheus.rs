//! `prometheus:` gates: instant queries against `/api/v1/query` (DESIGN §6, budget in §13).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use rings::model::{Cluster, FieldKey, PrometheusGate};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{Observation, error_chain, safe_field_value, substitute};

/// At most this many queries in flight per Prometheus server (DESIGN §13).
pub const MAX_IN_FLIGHT_PER_SERVER: usize = 10;
/// Per-query timeout (DESIGN §13).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The only `baseline:` value.
pub const BASELINE_PRE_UPGRADE: &str = "preUpgrade";

/// Substitute `{clusterId}`, `{region}`, `{labels.cell}`, … (any [`FieldKey`]) into a PromQL
/// query. A value that could break out of a label matcher (anything outside `[A-Za-z0-9._:/-]`)
/// is refused with an error naming the cluster and field; unknown placeholders are errors.
pub fn render_query(query: &str, cluster: &Cluster) -> Result<String, String> {
    substitute(query, |key| safe_field_value(key, cluster))
}

/// Whether a query aggregates `by (cluster)`: then it is run once per ring and the per-cluster
/// values are read from the `cluster` label.
pub fn is_by_cluster(query: &str) -> bool {
    // PromQL keywords are case-insensitive, label names are not (lowercasing keeps byte offsets).
    let lower = query.to_ascii_lowercase();
    let bytes = query.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find("by").map(|i| i + from) {
        from = i + 2;
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if !word_start {
            continue;
        }
        let rest = query[i + 2..].trim_start();
        if let Some(inner) = rest.strip_prefix('(')
            && let Some(close) = inner.find(')')
            && inner[..close].trim() == "cluster"
        {
            return true;
        }
    }
    false
}

/// The result of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// A scalar.
    Scalar(f64),
    /// An instant vector: each series' labels and value.
    Vector(Vec<(BTreeMap<String, String>, f64)>),
}

/// A Prometheus HTTP API client that keeps at most [`MAX_IN_FLIGHT_PER_SERVER`] queries in
/// flight per server and times each out after [`QUERY_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    http: reqwest::Client,
    servers: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Default for PrometheusClient {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusClient {
    /// A client with its own connection pool. Installs `ring` as the process's rustls crypto
    /// provider if none is installed yet (the only provider in the graph, see DEPENDENCIES.md).
    pub fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self::with_http_client(http)
    }

    /// A client over an existing `reqwest::Client` (its timeout should be [`QUERY_TIMEOUT`]).
    pub fn with_http_client(http: reqwest::Client) -> Self {
        PrometheusClient {
            http,
            servers: Arc::default(),
        }
    }

    fn semaphore(&self, server: &str) -> Arc<Semaphore> {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        servers
            .entry(server.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_SERVER)))
            .clone()
    }

    /// Run an instant query at `base_url` (`http://prometheus:9090`, a path prefix is kept).
    /// Errors carry Prometheus's own message when it gave one. Matrix and string results are
    /// errors (a gate needs one number).
    pub async fn instant(&self, base_url: &str, query: &str) -> Result<QueryResult, String> {
        let mut url = Url::parse(&format!("{}/api/v1/query", base_url.trim_end_matches('/')))
            .map_err(|e| format!("bad Prometheus url `{base_url}`: {e}"))?;
        url.query_pairs_mut().append_pair("query", query);
        let semaphore = self.semaphore(&url.origin().ascii_serialization());
        let _permit = semaphore
            .acquire_owned()
            .await
            .map_err(|e| format!("Prometheus client closed: {e}"))?;
        let request = async {
            let response = self.http.get(url).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(QUERY_TIMEOUT, request)
            .await
            .map_err(|_| {
                format!(
                    "Prometheus {base_url}: timeout after {}s",
                    QUERY_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("Prometheus {base_url}: {}", error_chain(&e)))?;
        parse_response(status.as_u16(), &body)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct ApiSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

fn parse_value(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .map_err(|_| format!("Prometheus returned a non-number `{text}`"))
}

fn parse_response(status: u16, body: &[u8]) -> Result<QueryResult, String> {
    let parsed: ApiResponse = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            return Err(format!(
                "Prometheus answered HTTP {status}: {}",
                super::tail(&text, 200)
            ));
        }
    };
    if parsed.status != "success" {
        return Err(format!(
            "Prometheus error ({}, HTTP {status}): {}",
            parsed.error_type.as_deref().unwrap_or("unknown"),
            parsed.error.as_deref().unwrap_or("no message")
        ));
    }
    let data = parsed
        .data
        .ok_or("Prometheus answered success without data")?;
    match data.result_type.as_str() {
        "scalar" => {
            let (_, value): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| format!("unexpected scalar from Prometheus: {e}"))?;
            Ok(QueryResult::Scalar(parse_value(&value)?))
        }
        "vector" => {
            let samples: Vec<ApiSample> = serde_json::from_value(data.result)
                .map_err(|e| format!("unexpected vector from Prometheus: {e}"))?;
            samples
                .into_iter()
                .map(|s| Ok((s.metric, parse_value(&s.value.1)?)))
                .collect::<Result<_, String>>()
                .map(QueryResult::Vector)
        }
        other => Err(format!(
            "the query returns a {other}; a gate needs an instant vector or a scalar"
        )),
    }
}

/// Compare one value with the gate's bounds and baseline.
fn judge(gate: &PrometheusGate, value: f64, baseline_value: Option<f64>) -> Observation {
    if value.is_nan() {
        return Observation::inconclusive("NaN");
    }
    if let Some(min) = gate.min
        && value < min
    {
        return Observation::fail(Some(value), format!("{value} < min {min}"));
    }
    if let Some(max) = gate.max
        && value > max
    {
        return Observation::fail(Some(value), format!("{value} > max {max}"));
    }
    let Some(kind) = gate.baseline.as_deref() else {
        return Observation::pass(Some(value), value.to_string());
    };
    if kind != BASELINE_PRE_UPGRADE {
        return Observation::inconclusive(format!(
            "unknown baseline `{kind}` (only `{BASELINE_PRE_UPGRADE}`)"
        ));
    }
    let Some(base) = baseline_value.filter(|b| !b.is_nan()) else {
        return Observation::inconclusive(format!("{value}; no pre-upgrade baseline"));
    };
    let increase = value - base;
    if let Some(max_increase) = gate.max_increase
        && increase > max_increase
    {
        return Observation::fail(
            Some(value),
            format!("{value}: +{increase} over baseline {base} > maxIncrease {max_increase}"),
        );
    }
    if let Some(max_ratio) = gate.max_ratio
        && base != 0.0
    {
        let ratio = value / base;
        if ratio > max_ratio {
            return Observation::fail(
                Some(value),
                format!("{value}: {ratio}× baseline {base} > maxRatio {max_ratio}"),
            );
        }
    }
    Observation::pass(Some(value), format!("{value} (baseline {base})"))
}

/// Evaluate a gate on one cluster: render, query, compare. No data, NaN, an HTTP error, a
/// Prometheus error or a timeout is inconclusive, never a pass. A vector must have exactly
/// one element. With `baseline: preUpgrade`, `baseline_value` is the same query sampled before
/// the merge: `value - baseline <= maxIncrease` and `value / baseline <= maxRatio` (a zero
/// baseline skips the ratio; a missing baseline is inconclusive).
pub async fn evaluate(
    client: &PrometheusClient,
    gate: &PrometheusGate,
    cluster: &Cluster,
    baseline_value: Option<f64>,
) -> Observation {
    let query = match render_query(&gate.query, cluster) {
        Ok(q) => q,
        Err(e) => return Observation::inconclusive(e),
    };
    match client.instant(&gate.url, &query).await {
        Err(e) => Observation::inconclusive(e),
        Ok(QueryResult::Scalar(value)) => judge(gate, value, baseline_value),
        Ok(QueryResult::Vector(series)) => match series.as_slice() {
            [] => Observation::inconclusive("no data"),
            [(_, value)] => judge(gate, *value, baseline_value),
            many => Observation::inconclusive(format!(
                "{} series; the query must return one value per cluster",
                many.len()
            )),
        },
    }
}

/// Render a `by (cluster)` query once for a ring: `{clusterId}` becomes the alternation of the
/// ring's ids (`c1|c2`, for `cluster=~"{clusterId}"`); every other placeholder must render the
/// same on every cluster.
fn render_ring_query(query: &str, clusters: &[&Cluster]) -> Result<String, String> {
    let Some(first) = clusters.first() else {
        return Err("a ring with no clusters".to_owned());
    };
    let ids = clusters
        .iter()
        .map(|c| c.id.to_string())
        .collect::<Vec<_>>()
        .join("|");
    let render = |cluster: &Cluster| {
        substitute(query, |key| match key {
            FieldKey::ClusterId => Ok(ids.clone()),
            other => safe_field_value(other, cluster),
        })
    };
    let rendered = render(first)?;
    for cluster in &clusters[1..] {
        if render(cluster)? != rendered {
            return Err(format!(
                "the `by (cluster)` query is run once per ring, but its placeholders differ \
                 between clusters `{}` and `{}`",
                first.id, cluster.id
            ));
        }
    }
    Ok(rendered)
}

/// Evaluate a `by (cluster)` gate once for a ring: one query, then one observation per cluster
/// read from the `cluster` label (a cluster missing from the result is inconclusive, `no data`).
/// `baselines` maps cluster ids to their pre-upgrade values.
pub async fn evaluate_ring(
    client: &PrometheusClient,
    gate: &PrometheusGate,
    clusters: &[&Cluster],
    baselines: &BTreeMap<String, f64>,
) -> Vec<(String, Observation)> {
    let all = |message: String| {
        clusters
            .iter()
            .map(|c| (c.id.to_string(), Observation::inconclusive(message.clone())))
            .collect()
    };
    let query = match render_ring_query(&gate.query, clusters) {
        Ok(q) => q,
        Err(e) => return all(e),
    };
    let series = match client.instant(&gate.url, &query).await {
        Err(e) => return all(e),
        Ok(QueryResult::Scalar(_)) => {
            return all(
                "the `by (cluster)` query returned a scalar, not one series per cluster".to_owned(),
            );
        }
        Ok(QueryResult::Vector(series)) => series,
    };
    clusters
        .iter()
        .map(|cluster| {
            let id = cluster.id.to_string();
            let values = series
                .iter()
                .filter(|(labels, _)| labels.get("cluster") == Some(&id))
                .map(|(_, v)| *v)
                .collect::<Vec<_>>();
            let observation = match values.as_slice() {
                [] => Observation::inconclusive("no data"),
                [value] => judge(gate, *value, baselines.get(&id).copied()),
                many => Observation::inconclusive(format!(
                    "{} series for cluster `{id}`; the query must return one value per cluster",
                    many.len()
                )),
            };
            (id, observation)
        })
        .collect()
}

/// The gate's query value for each cluster, unjudged (what `baseline: preUpgrade` compares
/// with later). A `by (cluster)` query runs once for all clusters; any other runs once per
/// cluster, concurrently (at most [`MAX_IN_FLIGHT_PER_SERVER`] at a time per server). No data,
/// NaN, several series or an error is `Err` with the reason. Results are in `clusters` order.
pub async fn sample(
    client: &PrometheusClient,
    gate: &PrometheusGate,
    clusters: &[&Cluster],
) -> Vec<Result<f64, String>> {
    let one = |value: f64| {
        if value.is_nan() {
            Err("NaN".to_owned())
        } else {
            Ok(value)
        }
    };
    if is_by_cluster(&gate.query) {
        let all = |message: String| vec![Err(message); clusters.len()];
        let query = match render_ring_query(&gate.query, clusters) {
            Ok(q) => q,
            Err(e) => return all(e),
        };
        let series = match client.instant(&gate.url, &query).await {
            Err(e) => return all(e),
            Ok(QueryResult::Scalar(_)) => {
                return all(
                    "the `by (cluster)` query returned a scalar, not one series per cluster"
                        .to_owned(),
                );
            }
            Ok(QueryResult::Vector(series)) => series,
        };
        return clusters
            .iter()
            .map(|cluster| {
                let id = cluster.id.as_str();
                let values: Vec<f64> = series
                    .iter()
                    .filter(|(labels, _)| labels.get("cluster").map(String::as_str) == Some(id))
                    .map(|(_, v)| *v)
                    .collect();
                match values.as_slice() {
                    [] => Err("no data".to_owned()),
                    [value] => one(*value),
                    many => Err(format!("{} series for cluster `{id}`", many.len())),
                }
            })
            .collect();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let query = render_query(&gate.query, cluster);
        let (client, url) = (client.clone(), gate.url.clone());
        tasks.spawn(async move {
            let value = match query {
                Err(e) => Err(e),
                Ok(q) => match client.instant(&url, &q).await {
                    Err(e) => Err(e),
                    Ok(QueryResult::Scalar(v)) => one(v),
                    Ok(QueryResult::Vector(series)) => match series.as_slice() {
                        [] => Err("no data".to_owned()),
                        [(_, v)] => one(*v),
                        many => Err(format!(
                            "{} series; one value per cluster expected",
                            many.len()
                        )),
                    },
                },
            };
            (i, value)
        });
    }
    let mut out = vec![Err("the query did not run".to_owned()); clusters.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, value)) = done
            && let Some(slot) = out.get_mut(i)
        {
            *slot = value;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn by_cluster_detection() {
        assert!(is_by_cluster("sum by (cluster) (rate(x[5m]))"));
        assert!(is_by_cluster("sum(rate(x[5m])) by(cluster)"));
        assert!(is_by_cluster("avg BY ( cluster ) (x)"));
        assert!(!is_by_cluster("avg by (Cluster) (x)"));
        assert!(!is_by_cluster("sum by (cluster, code) (x)"));
        assert!(!is_by_cluster("standby(cluster)"));
        assert!(!is_by_cluster("x{cluster=\"{clusterId}\"}"));
    }

    #[test]
    fn parses_prometheus_answers() {
        let ok = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"cluster":"c1"},"value":[1.5,"NaN"]}]}}"#;
        let Ok(QueryResult::Vector(v)) = parse_response(200, ok) else {
            panic!("vector")
        };
        assert!(v[0].1.is_nan());
        let inf = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"+Inf"]}}"#;
        assert_eq!(
            parse_response(200, inf),
            Ok(QueryResult::Scalar(f64::INFINITY))
        );
        let err = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(
            parse_response(400, err)
                .unwrap_err()
                .contains("parse error")
        );
        assert!(
            parse_response(502, b"bad gateway")
                .unwrap_err()
                .contains("HTTP 502")
        );
    }
}
