//! `ringmaster-sim`: serves a simulated world on loopback for as long as it runs (DESIGN §10).
//!
//! ```text
//! ringmaster-sim --config ringmaster.yaml [--github-repo OWNER/NAME] [--github-token T] [--port N]
//!                [--no-github] [--kubeconfig PATH] [--converge-after D] [--step-delay D]
//!                [--poll D] [--fault CLUSTER=KIND[@VERSION]]...
//!                [--github-fault KIND[@N]]... [--github-fault-for D]
//! ```
//!
//! It serves the simulated fleet of the GitOps repository of `gitops.url` (a local path, bare
//! or not): one fake Kubernetes API server and one metrics endpoint per cluster of the registry
//! on the base branch, converging when that branch changes (see `integration::sim`), with a
//! kubeconfig written to `--kubeconfig` (default `./ringmaster-sim.kubeconfig`; not written
//! when the registry is empty). Unless `--no-github`, it also serves the fake GitHub REST API
//! for one repository backed by the same git repository. Durations are written like `500ms`,
//! `5s`, `1m30s`. Fault kinds: `unreachable`, `slow`, `errors`, `crashloop`, `removed-api`;
//! `@1.34` delays a fault until the cluster has converged to Kubernetes 1.34.
//!
//! `--github-fault KIND[@N]` makes the fake GitHub fail after `N` requests (default 0) for
//! `--github-fault-for` (default 60s), then recover: `errors` (502), `rate-limit` (429 with
//! `Retry-After`), `secondary-limit` (403 secondary rate limit), `slow` (answers 5 s late),
//! `outage` (connections dropped). While it runs, `POST /_fake/faults` with
//! `{"kind":"rate-limit","after":0,"for_secs":600}` starts another and `DELETE /_fake/faults`
//! ends them all.
//!
//! When ready it prints one JSON line on stdout:
//!
//! ```text
//! {"github":{"apiUrl":"http://127.0.0.1:PORT","repo":"OWNER/NAME","gitDir":"/abs/path"},
//!  "kubeconfig":"/abs/path","clusters":{"<id>":{"apiUrl":"http://127.0.0.1:PORT","metricsUrl":"http://127.0.0.1:PORT/metrics"}}}
//! ```
//!
//! (`"github": null` with `--no-github`, `"kubeconfig": null` when no cluster) and runs until
//! SIGINT or SIGTERM. Exit codes: 0 stopped by a signal, 1 error, 2 usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use integration::github::{FakeGitHub, Fault as GitHubFault};
use integration::sim::{
    DEFAULT_CONVERGE_AFTER, DEFAULT_GITHUB_FAULT_FOR, DEFAULT_KUBECONFIG, DEFAULT_POLL,
    DEFAULT_STEP_DELAY, Fault, GitHubFaultSpec, SimError, SimFleet, SimOptions, parse_duration,
};
use rings::model::{ForgeSettings, GitLocation};

const USAGE: &str = "usage: ringmaster-sim --config ringmaster.yaml [--github-repo OWNER/NAME] [--github-token T] [--port N] [--no-github] [--kubeconfig PATH] [--converge-after D] [--step-delay D] [--poll D] [--fault CLUSTER=KIND[@VERSION]]... [--github-fault KIND[@N]]... [--github-fault-for D]";

/// What `--help` adds to the usage line.
const HELP: &str = "  --config PATH            ringmaster.yaml: the GitOps repository (gitops.url) and forge.github
  --github-repo OWNER/NAME the repository the fake GitHub serves (default: forge.github's)
  --github-token T         the only token the fake GitHub accepts (default: any)
  --port N                 the fake GitHub's port on 127.0.0.1 (default: a free one)
  --no-github              serve the fleet alone
  --kubeconfig PATH        where the kubeconfig goes (default ./ringmaster-sim.kubeconfig)
  --converge-after D       from a change on the base branch to convergence (default 5s)
  --step-delay D           between convergence stages (default 500ms)
  --poll D                 between two reads of the base branch (default 200ms)
  --fault CLUSTER=KIND[@VERSION]
                           a cluster fault: unreachable, slow, errors, crashloop, removed-api;
                           @1.34 waits until the cluster runs Kubernetes 1.34
  --github-fault KIND[@N]  a fake GitHub fault, after N requests (default 0): errors (502),
                           rate-limit (429, Retry-After), secondary-limit (403), slow (answers
                           5s late), outage (connections dropped); then it clears itself
  --github-fault-for D     how long each --github-fault lasts (default 60s)
Durations are written like 500ms, 5s, 1m30s, 10m. At runtime, POST /_fake/faults with
{\"kind\":\"rate-limit\",\"after\":0,\"for_secs\":600} starts a GitHub fault, DELETE /_fake/faults
ends them all.";

/// Parsed command line.
#[derive(Debug)]
struct Args {
    config: Option<PathBuf>,
    github_repo: Option<String>,
    github_token: Option<String>,
    port: u16,
    no_github: bool,
    kubeconfig: PathBuf,
    converge_after: Duration,
    step_delay: Duration,
    poll: Duration,
    faults: Vec<Fault>,
    github_faults: Vec<GitHubFaultSpec>,
    github_fault_for: Duration,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            config: None,
            github_repo: None,
            github_token: None,
            port: 0,
            no_github: false,
            kubeconfig: PathBuf::from(DEFAULT_KUBECONFIG),
            converge_after: DEFAULT_CONVERGE_AFTER,
            step_delay: DEFAULT_STEP_DELAY,
            poll: DEFAULT_POLL,
            faults: Vec::new(),
            github_faults: Vec::new(),
            github_fault_for: DEFAULT_GITHUB_FAULT_FOR,
        }
    }
}

/// Why the simulator stopped before serving.
#[derive(Debug)]
enum Failure {
    /// Bad invocation or a setup the simulator cannot serve: exit 2.
    Usage(String),
    /// `ringmaster.yaml` does not load: its diagnostics, one per line (exit 1).
    Config(String),
    /// Anything else: exit 1.
    Error(String),
}

/// `Ok(None)` for `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let duration =
            |name: &str, v: String| parse_duration(&v).map_err(|e| format!("{name}: {e}"));
        match flag.as_str() {
            "--config" => out.config = Some(PathBuf::from(value("--config")?)),
            "--github-repo" => out.github_repo = Some(value("--github-repo")?),
            "--github-token" => out.github_token = Some(value("--github-token")?),
            "--port" => {
                let v = value("--port")?;
                out.port = v
                    .parse()
                    .map_err(|_| format!("--port: {v:?} is not a port number"))?;
            }
            "--no-github" => out.no_github = true,
            "--kubeconfig" => out.kubeconfig = PathBuf::from(value("--kubeconfig")?),
            "--converge-after" => {
                out.converge_after = duration("--converge-after", value("--converge-after")?)?;
            }
            "--step-delay" => out.step_delay = duration("--step-delay", value("--step-delay")?)?,
            "--poll" => out.poll = duration("--poll", value("--poll")?)?,
            "--fault" => {
                let v = value("--fault")?;
                out.faults
                    .push(v.parse().map_err(|e| format!("--fault: {e}"))?);
            }
            "--github-fault" => {
                let v = value("--github-fault")?;
                out.github_faults
                    .push(v.parse().map_err(|e| format!("--github-fault: {e}"))?);
            }
            "--github-fault-for" => {
                out.github_fault_for =
                    duration("--github-fault-for", value("--github-fault-for")?)?;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if out.config.is_none() {
        return Err("--config is required".to_string());
    }
    if out.poll.is_zero() {
        return Err("--poll must be longer than 0".to_string());
    }
    if out.github_fault_for.is_zero() {
        return Err("--github-fault-for must be longer than 0".to_string());
    }
    if out.no_github
        && (out.github_repo.is_some()
            || out.github_token.is_some()
            || !out.github_faults.is_empty())
    {
        return Err(
            "--no-github cannot be combined with --github-repo, --github-token or --github-fault"
                .to_string(),
        );
    }
    Ok(Some(out))
}

/// `OWNER/NAME` into its parts.
fn split_repo(s: &str) -> Option<(String, String)> {
    let (owner, name) = s.split_once('/')?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (ok(owner) && ok(name)).then(|| (owner.to_string(), name.to_string()))
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let config = args
        .config
        .ok_or_else(|| Failure::Usage("--config is required".to_string()))?;
    let settings = rings::load::load_settings(&config).map_err(|d| {
        let lines: Vec<String> = d.sorted().iter().map(|x| x.to_string()).collect();
        Failure::Config(lines.join("\n"))
    })?;

    let github_repo = match (args.no_github, &args.github_repo, &settings.forge) {
        (true, _, _) => None,
        (false, Some(r), _) => {
            Some(split_repo(r).ok_or_else(|| {
                Failure::Usage(format!("--github-repo {r:?}: expected OWNER/NAME"))
            })?)
        }
        (false, None, ForgeSettings::GitHub(g)) => Some((g.owner.clone(), g.repo.clone())),
        (false, None, ForgeSettings::Local) => {
            return Err(Failure::Usage(format!(
                "{}: forge is local, so there is no GitHub repository to serve; pass --github-repo OWNER/NAME, set forge.github, or pass --no-github to serve the fleet alone",
                config.display()
            )));
        }
    };

    let git_dir = match &settings.gitops.location {
        GitLocation::Local(p) => p.clone(),
        GitLocation::Remote(url) => {
            return Err(Failure::Usage(format!(
                "{}: gitops.url {url:?} is remote; the simulator serves a local repository (a path or file:// URL)",
                config.display()
            )));
        }
    };
    let git_dir = std::fs::canonicalize(&git_dir)
        .map_err(|e| Failure::Error(format!("gitops.url {}: {e}", settings.gitops.url)))?;
    if let Err(e) = git2::Repository::open(&git_dir) {
        return Err(Failure::Error(format!(
            "gitops.url {}: not a git repository: {}",
            git_dir.display(),
            e.message()
        )));
    }

    let fleet = SimFleet::start(SimOptions {
        repo: git_dir.clone(),
        branch: settings.gitops.branch.clone(),
        registry_glob: settings.gitops.registry.clone(),
        converge_after: args.converge_after,
        step_delay: args.step_delay,
        poll: args.poll,
        faults: args.faults,
        kubeconfig: args.kubeconfig,
    })
    .await
    .map_err(|e| match e {
        SimError::UnknownCluster { .. } => Failure::Usage(format!("--fault: {e}")),
        other => Failure::Error(other.to_string()),
    })?;
    let clusters = fleet.clusters();

    let github = match github_repo {
        Some((owner, name)) => {
            let github = FakeGitHub::start_on_port(args.port).await.map_err(|e| {
                Failure::Error(format!("cannot listen on 127.0.0.1:{}: {e}", args.port))
            })?;
            github.add_repo(&owner, &name, &git_dir, &settings.gitops.branch);
            github.require_token(args.github_token);
            for f in &args.github_faults {
                github.inject(GitHubFault::Timed(f.lasting(args.github_fault_for)));
            }
            Some((github, format!("{owner}/{name}")))
        }
        None => None,
    };

    let cluster_urls: serde_json::Map<String, serde_json::Value> = clusters
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                serde_json::json!({"apiUrl": c.api_url, "metricsUrl": c.metrics_url}),
            )
        })
        .collect();
    let ready = serde_json::json!({
        "github": github.as_ref().map(|(g, repo)| serde_json::json!({
            "apiUrl": g.api_url(),
            "repo": repo,
            "gitDir": git_dir.display().to_string(),
        })),
        "kubeconfig": (!clusters.is_empty()).then(|| fleet.kubeconfig().display().to_string()),
        "clusters": cluster_urls,
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{ready}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Error(format!("cannot write to stdout: {e}")))?;
    drop(stdout);

    let waited = wait_for_signal().await;
    if let Some((github, _)) = github {
        github.shutdown().await;
    }
    drop(fleet);
    waited.map_err(|e| Failure::Error(format!("cannot wait for signals: {e}")))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Config(diagnostics)) => {
            eprintln!("{diagnostics}");
            ExitCode::from(1)
        }
        Err(Failure::Error(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
