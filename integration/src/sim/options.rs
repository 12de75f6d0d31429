//! What a simulated fleet is started with: [`SimOptions`], the faults ([`Fault`]) and the
//! duration syntax of the `ringmaster-sim` flags.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rings::{ClusterId, Version};

use crate::github::{FaultKind as GitHubFaultKind, TimedFault};

/// Default time between a change on the base branch and the start of a cluster's convergence.
pub const DEFAULT_CONVERGE_AFTER: Duration = Duration::from_secs(5);
/// Default delay between two convergence stages (control plane, each node, add-ons, policies).
pub const DEFAULT_STEP_DELAY: Duration = Duration::from_millis(500);
/// Default interval between two reads of the base branch's head.
pub const DEFAULT_POLL: Duration = Duration::from_millis(200);
/// Default kubeconfig file name (in the current directory for `ringmaster-sim`).
pub const DEFAULT_KUBECONFIG: &str = "ringmaster-sim.kubeconfig";

/// How a simulated fleet runs.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The GitOps repository (a local path, bare or not).
    pub repo: PathBuf,
    /// The base branch the clusters converge to (`main`).
    pub branch: String,
    /// Glob of the fleet-registry files in the repository (`clusters/**/cluster.yaml`).
    pub registry_glob: String,
    /// Time between a change on the base branch and the start of convergence. Default 5 s.
    pub converge_after: Duration,
    /// Delay between convergence stages: control plane, each node, add-ons, policies.
    /// Default 500 ms.
    pub step_delay: Duration,
    /// How often the base branch's head is read (the registry is re-read only when it
    /// moved). Default 200 ms.
    pub poll: Duration,
    /// Faults to inject, from the start or once a cluster reaches a version.
    pub faults: Vec<Fault>,
    /// Where the kubeconfig is written: one context per cluster, named by its id.
    pub kubeconfig: PathBuf,
}

impl SimOptions {
    /// Options for `repo` with every default: branch `main`, registry
    /// `clusters/**/cluster.yaml`, the default delays, no fault, and the kubeconfig
    /// `ringmaster-sim.kubeconfig` in the current directory.
    pub fn new(repo: impl Into<PathBuf>) -> SimOptions {
        SimOptions {
            repo: repo.into(),
            branch: rings::load::DEFAULT_BRANCH.to_owned(),
            registry_glob: rings::load::DEFAULT_REGISTRY_GLOB.to_owned(),
            converge_after: DEFAULT_CONVERGE_AFTER,
            step_delay: DEFAULT_STEP_DELAY,
            poll: DEFAULT_POLL,
            faults: Vec::new(),
            kubeconfig: PathBuf::from(DEFAULT_KUBECONFIG),
        }
    }
}

/// A fault of one cluster: `CLUSTER=KIND[@VERSION]` on the command line.
///
/// ```
/// use integration::sim::{Fault, FaultKind};
/// let f: Fault = "aws-euc1-canary-01=crashloop@1.34".parse().unwrap();
/// assert_eq!(f.kind, FaultKind::Crashloop);
/// assert_eq!(f.after_version.as_deref(), Some("1.34"));
/// assert_eq!(f.to_string(), "aws-euc1-canary-01=crashloop@1.34");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The cluster id.
    pub cluster: String,
    /// What goes wrong.
    pub kind: FaultKind,
    /// A Kubernetes minor (`"1.34"`): the fault starts once the cluster has converged to it
    /// (or to a later minor). `None`: from the start.
    pub after_version: Option<String>,
}

/// What goes wrong on a faulty cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Every connection to the API server is reset.
    Unreachable,
    /// Every API answer is delayed by [`super::SLOW_FAULT_DELAY`].
    Slow,
    /// Every API request answers `500` with a `Status` body.
    Errors,
    /// Application pods crash-loop (growing restarts), application workloads lose
    /// availability, and the error ratio of the cluster's traffic jumps to about 20 %.
    Crashloop,
    /// Objects served under API versions removed in 1.25 (`policy/v1beta1`
    /// PodDisruptionBudget `default/legacy-pdb`, `batch/v1beta1` CronJob
    /// `default/legacy-cronjob`), reported requested by `apiserver_requested_deprecated_apis`.
    RemovedApi,
}

impl FaultKind {
    /// Every kind, in the order of the command-line names.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Unreachable,
        FaultKind::Slow,
        FaultKind::Errors,
        FaultKind::Crashloop,
        FaultKind::RemovedApi,
    ];

    /// The command-line name (`removed-api`).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Unreachable => "unreachable",
            FaultKind::Slow => "slow",
            FaultKind::Errors => "errors",
            FaultKind::Crashloop => "crashloop",
            FaultKind::RemovedApi => "removed-api",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultKind, String> {
        if let Some(k) = FaultKind::ALL.into_iter().find(|k| k.as_str() == s) {
            return Ok(k);
        }
        let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
        let hint = rings::diag::did_you_mean(s, names.iter().copied())
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
        Err(format!(
            "unknown fault kind `{s}`: {hint}expected one of {}",
            names.join(", ")
        ))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.cluster, self.kind)?;
        if let Some(v) = &self.after_version {
            write!(f, "@{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Fault, String> {
        let s = text.trim();
        let Some((cluster, rest)) = s.split_once('=') else {
            return Err(format!(
                "fault `{s}`: expected CLUSTER=KIND[@VERSION], for example `aws-euc1-canary-01=crashloop@1.34`"
            ));
        };
        let cluster = ClusterId::new(cluster.trim()).map_err(|e| format!("fault `{s}`: {e}"))?;
        let (kind, after) = match rest.split_once('@') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (rest.trim(), None),
        };
        let kind: FaultKind = kind.parse().map_err(|e| format!("fault `{s}`: {e}"))?;
        let after_version = after
            .map(|v| {
                let minor_only = || {
                    format!(
                        "fault `{s}`: `{v}` is not a Kubernetes minor version (write it like `1.34`)"
                    )
                };
                let parsed = Version::parse(v).map_err(|_| minor_only())?;
                if parsed.has_patch() || v.contains(['-', '+', '_']) {
                    return Err(minor_only());
                }
                let (major, minor) = parsed.major_minor();
                Ok(format!("{major}.{minor}"))
            })
            .transpose()?;
        Ok(Fault {
            cluster: cluster.as_str().to_owned(),
            kind,
            after_version,
        })
    }
}

/// How long a `--github-fault` lasts when `--github-fault-for` is not given.
pub const DEFAULT_GITHUB_FAULT_FOR: Duration = Duration::from_secs(60);

/// A fault of the fake GitHub: `KIND[@N]` on the command line (`--github-fault`), lasting
/// `--github-fault-for` once it starts after `N` requests (default 0).
///
/// ```
/// use std::time::Duration;
/// use integration::github::FaultKind;
/// use integration::sim::GitHubFaultSpec;
/// let f: GitHubFaultSpec = "rate-limit@3".parse().unwrap();
/// assert_eq!((f.kind, f.after), (FaultKind::RateLimit, 3));
/// assert_eq!(f.lasting(Duration::from_secs(2)).duration, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GitHubFaultSpec {
    /// What goes wrong.
    pub kind: GitHubFaultKind,
    /// Requests answered normally first.
    pub after: u64,
}

impl GitHubFaultSpec {
    /// The fault, lasting `duration`.
    pub fn lasting(self, duration: Duration) -> TimedFault {
        TimedFault::new(self.kind, duration).after(self.after)
    }
}

impl fmt::Display for GitHubFaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind, self.after)
    }
}

impl FromStr for GitHubFaultSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<GitHubFaultSpec, String> {
        let s = text.trim();
        let (kind, after) = match s.split_once('@') {
            Some((k, n)) => (k, Some(n)),
            None => (s, None),
        };
        let kind: GitHubFaultKind = kind
            .parse()
            .map_err(|e| format!("GitHub fault `{s}`: {e} (write it like `rate-limit@3`)"))?;
        let after = after
            .map(|n| {
                n.trim().parse::<u64>().map_err(|_| {
                    format!(
                        "GitHub fault `{s}`: `{n}` is not a number of requests (write it like `{kind}@3`)"
                    )
                })
            })
            .transpose()?
            .unwrap_or(0);
        Ok(GitHubFaultSpec { kind, after })
    }
}

/// Parses a duration made of `<number><unit>` parts, units `ms`, `s`, `m` and `h` (`500ms`,
/// `5s`, `1m30s`); `0` alone is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let invalid = |why: &str| {
        format!("`{s}` is not a duration: {why} (write it like `500ms`, `5s` or `1m30s`)")
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let (number, tail) = rest.split_at(digits);
        let n: u64 = number.parse().map_err(|_| invalid("number too large"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "" => return Err(invalid("a unit is missing")),
            other => return Err(invalid(&format!("unknown unit `{other}`"))),
        };
        total = total.saturating_add(part);
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print() {
        let f: Fault = "aws-euc1-canary-01=crashloop@1.34".parse().unwrap();
        assert_eq!(
            f,
            Fault {
                cluster: "aws-euc1-canary-01".into(),
                kind: FaultKind::Crashloop,
                after_version: Some("1.34".into()),
            }
        );
        let f: Fault = "c1=removed-api".parse().unwrap();
        assert_eq!((f.kind, f.after_version), (FaultKind::RemovedApi, None));
        let f: Fault = "c1=slow@v1.33".parse().unwrap();
        assert_eq!(f.after_version.as_deref(), Some("1.33"));
        for kind in FaultKind::ALL {
            let f: Fault = format!("c={kind}").parse().unwrap();
            assert_eq!(f.kind, kind);
        }
    }

    #[test]
    fn fault_errors_say_what_to_write() {
        let err = "aws-euc1-canary-01".parse::<Fault>().unwrap_err();
        assert_eq!(
            err,
            "fault `aws-euc1-canary-01`: expected CLUSTER=KIND[@VERSION], for example `aws-euc1-canary-01=crashloop@1.34`"
        );
        let err = "c1=crashlop".parse::<Fault>().unwrap_err();
        assert_eq!(
            err,
            "fault `c1=crashlop`: unknown fault kind `crashlop`: did you mean `crashloop`? expected one of unreachable, slow, errors, crashloop, removed-api"
        );
        let err = "c1=slow@1.34.2".parse::<Fault>().unwrap_err();
        assert!(err.contains("not a Kubernetes minor version"), "{err}");
        let err = "c1=slow@soon".parse::<Fault>().unwrap_err();
        assert!(err.contains("not a Kubernetes minor version"), "{err}");
        let err = "Bad_Id=slow".parse::<Fault>().unwrap_err();
        assert!(err.starts_with("fault `Bad_Id=slow`: "), "{err}");
    }

    #[test]
    fn github_faults_parse_and_say_what_to_write() {
        let f: GitHubFaultSpec = "rate-limit@3".parse().unwrap();
        assert_eq!(
            f.lasting(Duration::from_secs(2)),
            TimedFault::new(GitHubFaultKind::RateLimit, Duration::from_secs(2)).after(3)
        );
        assert_eq!(f.to_string(), "rate-limit@3");
        for kind in GitHubFaultKind::ALL {
            let f: GitHubFaultSpec = kind.as_str().parse().unwrap();
            assert_eq!((f.kind, f.after), (kind, 0));
        }
        assert_eq!(
            "bogus".parse::<GitHubFaultSpec>().unwrap_err(),
            "GitHub fault `bogus`: unknown GitHub fault kind `bogus`: expected one of errors, rate-limit, secondary-limit, slow, outage (write it like `rate-limit@3`)"
        );
        assert_eq!(
            "outage@soon".parse::<GitHubFaultSpec>().unwrap_err(),
            "GitHub fault `outage@soon`: `soon` is not a number of requests (write it like `outage@3`)"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(
            parse_duration("5")
                .unwrap_err()
                .contains("a unit is missing")
        );
        assert!(
            parse_duration("5d")
                .unwrap_err()
                .contains("unknown unit `d`")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
    }
}
