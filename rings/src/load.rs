//! Loading: files → raw structs → validated model, every problem collected with its position.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::diag::{Diagnostics, Pos, Severity, did_you_mean};
use crate::duration::parse_duration;
use crate::glob::Glob;
use crate::ids::{ClusterId, Component, GateName, ReleaseName, RingName};
use crate::model::*;
use crate::raw::*;
use crate::schedule::CronSchedule;
use crate::version::{Version, VersionRange};
use crate::yaml::{parse_many, parse_one};

/// The API version every ringmaster file carries.
pub const API_VERSION: &str = "ringmaster/v1";
/// Default base branch.
pub const DEFAULT_BRANCH: &str = "main";
/// Default registry glob.
pub const DEFAULT_REGISTRY_GLOB: &str = "clusters/**/cluster.yaml";
/// Default time allowed for convergence after a merge.
pub const DEFAULT_CONVERGE_TIMEOUT_SECS: i64 = 30 * 60;
/// Default soak.
pub const DEFAULT_SOAK_SECS: i64 = 60 * 60;
/// Default reconcile interval.
pub const DEFAULT_RECONCILE_INTERVAL_SECS: i64 = 30;
/// Default API listen address (loopback only).
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9464";

/// A loaded, validated configuration and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The model.
    pub config: Config,
    /// Findings that did not prevent loading (empty rings, coverage gaps in `warn` mode).
    pub warnings: Diagnostics,
}

/// Load `ringmaster.yaml` at `config_path` and everything it points to. The fleet registry is
/// read from the GitOps repository's base branch through git2 (what is committed, not a
/// working copy). Returns every problem found when any is an error.
pub fn load(config_path: &Path) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::new();
    let settings_file = config_path.display().to_string();
    let text = match read_text(config_path) {
        Ok(t) => t,
        Err(msg) => {
            diags.error(&settings_file, Pos::FILE, msg);
            return Err(diags);
        }
    };
    let Some(raw) = parse_one::<RawSettings>(&settings_file, &text, &mut diags) else {
        return Err(diags);
    };
    let base_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let Some(settings) = settings(&settings_file, config_path, &base_dir, raw, &mut diags) else {
        return Err(diags);
    };

    let rings_file = settings.rings_path.display().to_string();
    let ring_set = match read_text(&settings.rings_path) {
        Ok(text) => parse_one::<RawRingSet>(&rings_file, &text, &mut diags)
            .map(|raw| ring_set(&rings_file, raw, &mut diags)),
        Err(msg) => {
            diags.error(&rings_file, Pos::FILE, msg);
            None
        }
    };

    let releases = releases(&settings, &mut diags);

    let fleet = match read_registry(&settings.gitops) {
        Ok(files) => fleet(&settings.gitops, files, &mut diags),
        Err(msg) => {
            diags.error(&settings_file, Pos::FILE, msg);
            None
        }
    };

    let (Some(ring_set), Some(fleet)) = (ring_set, fleet) else {
        return Err(diags);
    };
    let membership = membership(&settings.gitops, &rings_file, &ring_set, &fleet, &mut diags);
    coverage(&rings_file, &ring_set, &fleet, &membership, &mut diags);

    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Loaded {
        config: Config {
            settings,
            ring_set,
            releases,
            fleet,
            membership,
        },
        warnings: diags,
    })
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

fn pos<T>(s: &S<T>) -> Pos {
    Pos::from_location(&s.referenced)
}

fn check_header(
    file: &str,
    api_version: &S<String>,
    kind: &S<String>,
    want_kind: &str,
    diags: &mut Diagnostics,
) {
    if api_version.value != API_VERSION {
        diags.error_hint(
            file,
            pos(api_version),
            format!("unsupported apiVersion `{}`", api_version.value),
            format!("write `apiVersion: {API_VERSION}`"),
        );
    }
    if kind.value != want_kind {
        diags.error_hint(
            file,
            pos(kind),
            format!("expected kind `{want_kind}`, found `{}`", kind.value),
            format!("this file must hold `kind: {want_kind}`"),
        );
    }
}

fn duration_or(
    file: &str,
    value: Option<&S<String>>,
    default_secs: i64,
    what: &str,
    diags: &mut Diagnostics,
) -> TimeDelta {
    match value {
        None => TimeDelta::seconds(default_secs),
        Some(v) => match parse_duration(&v.value) {
            Ok(d) => d,
            Err(msg) => {
                diags.error(file, pos(v), format!("invalid {what}: {msg}"));
                TimeDelta::seconds(default_secs)
            }
        },
    }
}

fn secret_source(base: &Path, env: Option<&String>, file: Option<&String>) -> Option<SecretSource> {
    env.map(|e| SecretSource::Env(e.clone()))
        .or_else(|| file.map(|f| SecretSource::File(base.join(f))))
}

fn settings(
    file: &str,
    path: &Path,
    base: &Path,
    raw: RawSettings,
    diags: &mut Diagnostics,
) -> Option<Settings> {
    check_header(file, &raw.api_version, &raw.kind, "Orchestrator", diags);
    let gitops = gitops(file, base, raw.gitops, diags);
    let forge = match raw.forge {
        None => ForgeSettings::Local,
        Some(f) => match (f.github, f.local) {
            (Some(_), Some(_)) => {
                diags.error(
                    file,
                    Pos::FILE,
                    "`forge` must set exactly one of `github` or `local`, not both",
                );
                ForgeSettings::Local
            }
            (None, _) => ForgeSettings::Local,
            (Some(gh), None) => github(file, base, gh, diags).unwrap_or(ForgeSettings::Local),
        },
    };
    let rings_path = base.join(
        raw.rings
            .as_ref()
            .map_or("rings.yaml", |r| r.value.as_str()),
    );
    let releases_glob = raw
        .releases
        .as_ref()
        .map_or("releases/*.yaml", |r| r.value.as_str());
    if let Err(msg) = Glob::new(releases_glob) {
        if let Some(r) = &raw.releases {
            diags.error(file, pos(r), format!("invalid `releases` glob: {msg}"));
        }
    }
    let store_path = base.join(
        raw.store
            .as_ref()
            .map_or("ringmaster.db", |s| s.value.as_str()),
    );
    let reconcile_interval = duration_or(
        file,
        raw.reconcile_interval.as_ref(),
        DEFAULT_RECONCILE_INTERVAL_SECS,
        "reconcileInterval",
        diags,
    );
    if reconcile_interval < TimeDelta::seconds(1) {
        if let Some(r) = &raw.reconcile_interval {
            diags.error(file, pos(r), "reconcileInterval must be at least 1s");
        }
    }
    let api = raw.api.unwrap_or_default();
    let api_listen = api
        .listen
        .as_ref()
        .map_or(DEFAULT_API_LISTEN.to_owned(), |l| l.value.clone());
    if let Some(l) = &api.listen {
        if l.value.parse::<std::net::SocketAddr>().is_err() {
            diags.error(
                file,
                pos(l),
                format!(
                    "api.listen `{}` is not an address like 127.0.0.1:9464",
                    l.value
                ),
            );
        }
    }
    let author = raw.author.map_or(
        ("ringmaster".to_owned(), "ringmaster@localhost".to_owned()),
        |a| (a.name, a.email),
    );
    Some(Settings {
        path: path.to_path_buf(),
        gitops: gitops?,
        forge,
        rings_path,
        releases_glob: releases_glob.to_owned(),
        store_path,
        kubeconfig: raw
            .kube
            .and_then(|k| k.kubeconfig)
            .map(|k| expand_home(base, &k)),
        api_listen,
        api_token: secret_source(base, api.token_env.as_ref(), api.token_file.as_ref()),
        reconcile_interval,
        author,
    })
}

fn expand_home(base: &Path, p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => {
            std::env::var_os("HOME").map_or_else(|| base.join(p), |h| PathBuf::from(h).join(rest))
        }
        None => base.join(p),
    }
}

fn gitops(
    file: &str,
    base: &Path,
    raw: RawGitops,
    diags: &mut Diagnostics,
) -> Option<GitopsSettings> {
    let url = raw.url.value.trim().to_owned();
    let location = if let Some(path) = url.strip_prefix("file://") {
        GitLocation::Local(PathBuf::from(path))
    } else if url.starts_with("https://")
        || url.starts_with("http://")
        || url.starts_with("ssh://")
        || is_scp_like(&url)
    {
        GitLocation::Remote(url.clone())
    } else if url.contains("://") {
        diags.error(file, pos(&raw.url), format!("gitops.url `{url}` has an unsupported scheme; use a path, file://, https:// or ssh://"));
        return None;
    } else {
        GitLocation::Local(base.join(clean_relative(&url)))
    };
    let branch = raw
        .branch
        .as_ref()
        .map_or(DEFAULT_BRANCH.to_owned(), |b| b.value.clone());
    if let Some(b) = &raw.branch {
        if git2::Branch::name_is_valid(&b.value)
            .map(|ok| !ok)
            .unwrap_or(true)
        {
            diags.error(
                file,
                pos(b),
                format!("gitops.branch `{}` is not a valid branch name", b.value),
            );
        }
    }
    let registry = raw
        .registry
        .as_ref()
        .map_or(DEFAULT_REGISTRY_GLOB.to_owned(), |r| r.value.clone());
    if let Err(msg) = Glob::new(&registry) {
        if let Some(r) = &raw.registry {
            diags.error(file, pos(r), format!("invalid gitops.registry glob: {msg}"));
        }
    }
    let auth = match raw.auth {
        None => GitAuth::None,
        Some(a) => {
            let p = pos(&a);
            let a = a.value;
            let set = [
                a.token_env.is_some(),
                a.token_file.is_some(),
                a.ssh_key_file.is_some(),
                a.ssh_agent == Some(true),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if set != 1 {
                diags.error(file, p, "gitops.auth must set exactly one of tokenEnv, tokenFile, sshKeyFile or sshAgent: true");
                GitAuth::None
            } else if let Some(src) =
                secret_source(base, a.token_env.as_ref(), a.token_file.as_ref())
            {
                GitAuth::Token(src)
            } else if let Some(k) = a.ssh_key_file {
                GitAuth::SshKey(expand_home(base, &k))
            } else {
                GitAuth::SshAgent
            }
        }
    };
    Some(GitopsSettings {
        url,
        location,
        branch,
        registry,
        auth,
    })
}

/// `./gitops` → `gitops` (so messages do not show `dir/./gitops`).
fn clean_relative(p: &str) -> PathBuf {
    Path::new(p)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `git@github.com:acme/repo.git` style.
fn is_scp_like(url: &str) -> bool {
    match url.split_once(':') {
        Some((host, path)) => host.contains('@') && !host.contains('/') && !path.is_empty(),
        None => false,
    }
}

fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| h.trim_start_matches('['))
            .unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn github(
    file: &str,
    base: &Path,
    gh: S<RawGithub>,
    diags: &mut Diagnostics,
) -> Option<ForgeSettings> {
    let p = pos(&gh);
    let gh = gh.value;
    let api_url = gh
        .api_url
        .as_ref()
        .map_or("https://api.github.com".to_owned(), |u| {
            u.value.trim_end_matches('/').to_owned()
        });
    if let Some(u) = &gh.api_url {
        // octocrab sends the token on every request: never over plain HTTP to another machine.
        if !(u.value.starts_with("https://") || is_loopback_http(&u.value)) {
            diags.error_hint(
                file,
                pos(u),
                format!("forge.github.apiUrl `{}` is not https", u.value),
                "the token would travel in clear; plain http is accepted only for loopback addresses",
            );
        }
    }
    let auth = match (
        secret_source(base, gh.token_env.as_ref(), gh.token_file.as_ref()),
        gh.app,
    ) {
        (Some(_), Some(_)) => {
            diags.error(
                file,
                p,
                "forge.github: set a token (tokenEnv/tokenFile) or `app`, not both",
            );
            return None;
        }
        (Some(src), None) => GitHubAuth::Token(src),
        (None, Some(app)) => GitHubAuth::App {
            app_id: app.app_id,
            private_key_file: expand_home(base, &app.private_key_file),
            installation_id: app.installation_id,
        },
        (None, None) => {
            diags.error(
                file,
                p,
                "forge.github needs credentials: tokenEnv, tokenFile or app",
            );
            return None;
        }
    };
    let merge_method = match gh.merge_method.as_ref().map(|m| (m.value.as_str(), pos(m))) {
        None | Some(("merge", _)) => MergeMethod::Merge,
        Some(("squash", _)) => MergeMethod::Squash,
        Some(("rebase", _)) => MergeMethod::Rebase,
        Some((other, p)) => {
            diags.error(
                file,
                p,
                format!("forge.github.mergeMethod `{other}` must be merge, squash or rebase"),
            );
            MergeMethod::Merge
        }
    };
    for (what, v) in [("owner", &gh.owner), ("repo", &gh.repo)] {
        if v.value.is_empty() || v.value.contains('/') {
            diags.error(
                file,
                pos(v),
                format!("forge.github.{what} `{}` must be a single name", v.value),
            );
        }
    }
    Some(ForgeSettings::GitHub(GitHubSettings {
        owner: gh.owner.value,
        repo: gh.repo.value,
        api_url,
        auth,
        merge_method,
    }))
}

fn selector_key(file: &str, key: &str, p: Pos, diags: &mut Diagnostics) -> Option<FieldKey> {
    match FieldKey::parse(key) {
        Ok(k) => Some(k),
        Err(msg) => {
            let hint = match did_you_mean(key, FieldKey::NAMES) {
                Some(c) => format!("did you mean `{c}`? labels are written `labels.{key}`"),
                None => format!(
                    "fields are {}; labels are written `labels.{key}`",
                    FieldKey::NAMES.join(", ")
                ),
            };
            diags.error_hint(file, p, msg, hint);
            None
        }
    }
}

fn selector(
    file: &str,
    raw: &BTreeMap<String, S<RawSelectorValue>>,
    diags: &mut Diagnostics,
) -> Selector {
    let mut terms = Vec::new();
    for (key, value) in raw {
        let p = pos(value);
        let Some(k) = selector_key(file, key, p, diags) else {
            continue;
        };
        let values = match &value.value {
            RawSelectorValue::One(v) => vec![v.clone()],
            RawSelectorValue::Many(vs) => vs.clone(),
        };
        if values.is_empty() {
            diags.error(file, p, format!("selector `{key}` lists no values"));
        }
        terms.push((k, values));
    }
    Selector { terms }
}

fn ring_set(file: &str, raw: RawRingSet, diags: &mut Diagnostics) -> RingSet {
    check_header(file, &raw.api_version, &raw.kind, "RingSet", diags);

    let mut gates = BTreeMap::new();
    for (name, g) in &raw.gates {
        let p = pos(g);
        match GateName::new(name) {
            Ok(gn) => {
                if let Some(gate) = gate(file, p, gn.clone(), &g.value, diags) {
                    gates.insert(gn, gate);
                }
            }
            Err(msg) => diags.error(file, p, msg),
        }
    }

    let mut rings = Vec::new();
    let mut seen: HashMap<String, Pos> = HashMap::new();
    if raw.rings.is_empty() {
        diags.error(file, Pos::FILE, "no rings are defined");
    }
    for (i, r) in raw.rings.iter().enumerate() {
        let p = pos(&r.name);
        let name = match RingName::new(&r.name.value) {
            Ok(n) => n,
            Err(msg) => {
                diags.error(file, p, msg);
                continue;
            }
        };
        if let Some(first) = seen.get(name.as_str()) {
            diags.error(
                file,
                p,
                format!(
                    "duplicate ring name `{name}` (first defined at line {})",
                    first.line
                ),
            );
        } else {
            seen.insert(name.as_str().to_owned(), p);
        }
        let merge = match r.merge.as_ref().map(|m| (m.value.as_str(), pos(m))) {
            None | Some(("manual", _)) => MergeMode::Manual,
            Some(("auto", _)) => MergeMode::Auto,
            Some((other, mp)) => {
                diags.error(
                    file,
                    mp,
                    format!("merge `{other}` must be `auto` or `manual`"),
                );
                MergeMode::Manual
            }
        };
        let mut reviewers = Vec::new();
        for rv in &r.reviewers {
            let v = rv.value.trim();
            let ok = !v.is_empty()
                && v.split('/').count() <= 2
                && v.split('/').all(|s| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
            if ok {
                reviewers.push(v.to_owned());
            } else {
                diags.error(
                    file,
                    pos(rv),
                    format!("reviewer `{v}` must be a user (`alice`) or a team (`org/team`)"),
                );
            }
        }
        let window = r.window.as_ref().and_then(|w| window(file, w, diags));
        let converge_timeout = duration_or(
            file,
            r.converge_timeout.as_ref(),
            DEFAULT_CONVERGE_TIMEOUT_SECS,
            "convergeTimeout",
            diags,
        );
        let soak = duration_or(file, r.soak.as_ref(), DEFAULT_SOAK_SECS, "soak", diags);
        let gate_refs = |list: &[S<String>], diags: &mut Diagnostics| -> Vec<GateName> {
            let mut out = Vec::new();
            for g in list {
                match raw.gates.contains_key(&g.value) {
                    true => {
                        if let Ok(n) = GateName::new(&g.value) {
                            out.push(n);
                        }
                    }
                    false => {
                        let msg = format!("ring `{name}` uses unknown gate `{}`", g.value);
                        match did_you_mean(&g.value, raw.gates.keys().map(String::as_str)) {
                            Some(c) => {
                                diags.error_hint(file, pos(g), msg, format!("did you mean `{c}`?"))
                            }
                            None => diags.error_hint(
                                file,
                                pos(g),
                                msg,
                                "define it under `gates:` in this file".to_owned(),
                            ),
                        }
                    }
                }
            }
            out
        };
        let gates_used = gate_refs(&r.gates, diags);
        let preflight = gate_refs(&r.preflight, diags);
        rings.push(Ring {
            name,
            position: i + 1,
            selector: selector(file, &r.selector, diags),
            merge,
            reviewers,
            window,
            converge_timeout,
            soak,
            gates: gates_used,
            preflight,
            pos: p,
        });
    }

    let mut freezes = Vec::new();
    for f in &raw.freezes {
        let from = instant(file, &f.from, diags);
        let to = instant(file, &f.to, diags);
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                diags.error(
                    file,
                    pos(&f.to),
                    format!(
                        "freeze ends ({}) before it starts ({})",
                        f.to.value, f.from.value
                    ),
                );
            } else {
                freezes.push(Freeze {
                    from,
                    to,
                    reason: f.reason.clone(),
                });
            }
        }
    }

    let mut coverage = Vec::new();
    for c in &raw.coverage {
        if let Some(k) = selector_key(file, &c.value, pos(c), diags) {
            coverage.push(k);
        }
    }
    let coverage_mode = match raw
        .coverage_mode
        .as_ref()
        .map(|m| (m.value.as_str(), pos(m)))
    {
        None | Some(("warn", _)) => CoverageMode::Warn,
        Some(("error", _)) => CoverageMode::Error,
        Some((other, p)) => {
            diags.error(
                file,
                p,
                format!("coverageMode `{other}` must be `warn` or `error`"),
            );
            CoverageMode::Warn
        }
    };

    for e in &raw.edits {
        let p = pos(e);
        let e = &e.value;
        let kinds = usize::from(e.kubernetes.is_some())
            + usize::from(e.addon.is_some())
            + usize::from(e.policy.is_some());
        if kinds != 1 {
            diags.error(
                file,
                p,
                "an edit rule names exactly one of `kubernetes`, `addon` or `policy`",
            );
            continue;
        }
        let (file_tpl, yaml_path, regex) = match &e.kubernetes {
            Some(t) => (Some(&t.file), t.yaml_path.as_ref(), t.regex.as_ref()),
            None => (e.file.as_ref(), e.yaml_path.as_ref(), e.regex.as_ref()),
        };
        match file_tpl {
            None => diags.error(file, p, "an edit rule needs `file`"),
            Some(t) if t.starts_with('/') || t.split('/').any(|s| s == "..") => {
                diags.error(
                    file,
                    p,
                    format!(
                        "edit file `{t}` must stay inside the repository (no leading `/`, no `..`)"
                    ),
                );
            }
            Some(_) => {}
        }
        if usize::from(yaml_path.is_some()) + usize::from(regex.is_some()) != 1 {
            diags.error(
                file,
                p,
                "an edit rule sets exactly one of `yamlPath` or `regex`",
            );
        }
        if let Some(r) = regex {
            if !r.contains("(?P<version>") && !r.contains("(?<version>") {
                diags.error(file, p, "an edit regex needs a named group `version`, like `cluster_version\\s*=\\s*\"(?P<version>[^\"]+)\"`");
            }
        }
        for (k, _) in &e.when {
            selector_key(file, k, p, diags);
        }
    }

    RingSet {
        rings,
        gates,
        freezes,
        coverage,
        coverage_mode,
        edits: raw.edits.into_iter().map(|e| e.value).collect(),
    }
}

fn instant(file: &str, v: &S<String>, diags: &mut Diagnostics) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(v.value.trim()) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            diags.error(
                file,
                pos(v),
                format!(
                    "`{}` is not an RFC 3339 instant like 2026-12-19T00:00:00Z: {e}",
                    v.value
                ),
            );
            None
        }
    }
}

fn window(file: &str, w: &RawWindow, diags: &mut Diagnostics) -> Option<Window> {
    let schedule = match CronSchedule::parse(&w.cron.value) {
        Ok(s) => Some(s),
        Err(msg) => {
            diags.error(
                file,
                pos(&w.cron),
                format!("invalid cron `{}`: {msg}", w.cron.value),
            );
            None
        }
    };
    let duration = match parse_duration(&w.duration.value) {
        Ok(d) if d > TimeDelta::zero() => Some(d),
        Ok(_) => {
            diags.error(
                file,
                pos(&w.duration),
                "a window's duration must be longer than 0s",
            );
            None
        }
        Err(msg) => {
            diags.error(
                file,
                pos(&w.duration),
                format!("invalid window duration: {msg}"),
            );
            None
        }
    };
    let timezone = match &w.timezone {
        None => Some(Tz::UTC),
        Some(tz) => match tz.value.parse::<Tz>() {
            Ok(t) => Some(t),
            Err(_) => {
                let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
                let msg = format!("unknown IANA timezone `{}`", tz.value);
                match did_you_mean(&tz.value, names) {
                    Some(c) => diags.error_hint(file, pos(tz), msg, format!("did you mean `{c}`?")),
                    None => diags.error_hint(
                        file,
                        pos(tz),
                        msg,
                        "use a name like Europe/Berlin or America/New_York",
                    ),
                }
                None
            }
        },
    };
    Some(Window {
        schedule: schedule?,
        duration: duration?,
        timezone: timezone?,
    })
}

fn gate(file: &str, p: Pos, name: GateName, g: &RawGate, diags: &mut Diagnostics) -> Option<Gate> {
    let kinds = [
        g.kube.is_some(),
        g.prometheus.is_some(),
        g.http.is_some(),
        g.command.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if kinds != 1 {
        diags.error(
            file,
            p,
            format!("gate `{name}` must have exactly one of kube, prometheus, http or command"),
        );
        return None;
    }
    let mut ok = true;
    let mut bad = |msg: String| {
        diags.error(file, p, format!("gate `{name}`: {msg}"));
        ok = false;
    };
    let check = if let Some(k) = &g.kube {
        let n = [
            k.nodes_ready.is_some(),
            k.workloads_available.is_some(),
            k.pods_healthy.is_some(),
            k.resource.is_some(),
            k.removed_apis.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            bad("`kube` must have exactly one of nodesReady, workloadsAvailable, podsHealthy, resource or removedApis".to_owned());
        }
        if let Some(nr) = &k.nodes_ready {
            if !(0.0..=1.0).contains(&nr.min_ratio) {
                bad(format!(
                    "nodesReady.minRatio {} must be between 0 and 1",
                    nr.min_ratio
                ));
            }
        }
        if let Some(r) = &k.resource {
            let n = usize::from(r.equals.is_some())
                + usize::from(r.one_of.is_some())
                + usize::from(r.semver_range.is_some());
            if n != 1 {
                bad("`resource` needs exactly one of equals, in or semverRange".to_owned());
            }
            if !r.json_path.starts_with('.') {
                bad(format!("jsonPath `{}` must start with `.`", r.json_path));
            }
            if let Some(range) = &r.semver_range {
                if let Err(msg) = VersionRange::parse(range) {
                    bad(msg);
                }
            }
        }
        GateCheck::Kube(k.clone())
    } else if let Some(pq) = &g.prometheus {
        if !(pq.url.starts_with("http://") || pq.url.starts_with("https://")) {
            bad(format!(
                "prometheus.url `{}` must be an http(s) URL",
                pq.url
            ));
        }
        if pq.query.trim().is_empty() {
            bad("prometheus.query is empty".to_owned());
        }
        match pq.baseline.as_deref() {
            None => {
                if pq.min.is_none() && pq.max.is_none() {
                    bad(
                        "prometheus needs `min` or `max` (or a baseline with maxIncrease/maxRatio)"
                            .to_owned(),
                    );
                }
            }
            Some("preUpgrade") => {
                if pq.max_increase.is_none() && pq.max_ratio.is_none() {
                    bad("a preUpgrade baseline needs maxIncrease or maxRatio".to_owned());
                }
            }
            Some(other) => bad(format!("baseline `{other}` must be `preUpgrade`")),
        }
        GateCheck::Prometheus(pq.clone())
    } else if let Some(h) = &g.http {
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            bad(format!("http.url `{}` must be an http(s) URL", h.url));
        }
        if let Some(t) = &h.timeout {
            if let Err(msg) = parse_duration(t) {
                bad(msg);
            }
        }
        GateCheck::Http(h.clone())
    } else if let Some(c) = &g.command {
        if c.argv.first().is_none_or(|a| a.is_empty()) {
            bad("command.argv must name a program".to_owned());
        }
        if let Some(t) = &c.timeout {
            if let Err(msg) = parse_duration(t) {
                bad(msg);
            }
        }
        GateCheck::Command(c.clone())
    } else {
        return None;
    };
    let interval = match &g.interval {
        None => TimeDelta::seconds(DEFAULT_GATE_INTERVAL_SECS),
        Some(i) => match parse_duration(i) {
            Ok(d) if d >= TimeDelta::seconds(1) => d,
            Ok(_) => {
                bad("interval must be at least 1s".to_owned());
                TimeDelta::seconds(DEFAULT_GATE_INTERVAL_SECS)
            }
            Err(msg) => {
                bad(format!("interval: {msg}"));
                TimeDelta::seconds(DEFAULT_GATE_INTERVAL_SECS)
            }
        },
    };
    for (what, v) in [
        ("failureLimit", g.failure_limit),
        ("inconclusiveLimit", g.inconclusive_limit),
    ] {
        if v == Some(0) {
            bad(format!("{what} must be at least 1"));
        }
    }
    ok.then(|| Gate {
        name,
        check,
        interval,
        failure_limit: g.failure_limit.unwrap_or(DEFAULT_FAILURE_LIMIT),
        inconclusive_limit: g.inconclusive_limit.unwrap_or(DEFAULT_INCONCLUSIVE_LIMIT),
    })
}

fn releases(settings: &Settings, diags: &mut Diagnostics) -> Vec<Release> {
    let settings_file = settings.path.display().to_string();
    let base = settings
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let Ok(glob) = Glob::new(&settings.releases_glob) else {
        return Vec::new();
    };
    let files = match list_files(&base, &glob) {
        Ok(f) => f,
        Err(msg) => {
            diags.error(&settings_file, Pos::FILE, msg);
            return Vec::new();
        }
    };
    if files.is_empty() {
        diags.warning(
            &settings_file,
            Pos::FILE,
            format!("no release file matches `{}`", settings.releases_glob),
        );
    }
    let mut out: Vec<Release> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in files {
        let file = path.display().to_string();
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(msg) => {
                diags.error(&file, Pos::FILE, msg);
                continue;
            }
        };
        for raw in parse_many::<RawRelease>(&file, &text, diags) {
            let Some(r) = release(&file, raw, diags) else {
                continue;
            };
            if let Some(first) = seen.get(r.name.as_str()) {
                diags.error(
                    &file,
                    Pos::FILE,
                    format!(
                        "duplicate release name `{}` (first defined in {first})",
                        r.name
                    ),
                );
                continue;
            }
            seen.insert(r.name.as_str().to_owned(), file.clone());
            out.push(r);
        }
    }
    out
}

/// Files under `base` matching `glob`, sorted by path. Symlinked files are not followed.
fn list_files(base: &Path, glob: &Glob) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let start: PathBuf = glob.literal_prefix().iter().collect();
    let root = base.join(&start);
    if !root.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![(root, start.to_string_lossy().replace('\\', "/"))];
    while let Some((dir, rel)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry
                .file_type()
                .map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?;
            if ft.is_dir() {
                if glob.could_match_below(&child_rel) {
                    stack.push((entry.path(), child_rel));
                }
            } else if ft.is_file() && glob.matches(&child_rel) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn version(file: &str, v: &S<String>, what: &str, diags: &mut Diagnostics) -> Option<Version> {
    match Version::parse(&v.value) {
        Ok(ver) => Some(ver),
        Err(msg) => {
            diags.error(file, pos(v), format!("invalid {what}: {msg}"));
            None
        }
    }
}

fn versions(
    file: &str,
    map: &BTreeMap<String, S<String>>,
    kind: &str,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Version> {
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if let Err(msg) = Component::check_item_name(kind, name) {
            diags.error(file, pos(v), msg);
            continue;
        }
        if let Some(ver) = version(file, v, &format!("{kind} `{name}` version"), diags) {
            out.insert(name.clone(), ver);
        }
    }
    out
}

fn release(file: &str, raw: RawRelease, diags: &mut Diagnostics) -> Option<Release> {
    check_header(file, &raw.api_version, &raw.kind, "Release", diags);
    let name = match ReleaseName::new(&raw.name.value) {
        Ok(n) => Some(n),
        Err(msg) => {
            diags.error(file, pos(&raw.name), msg);
            None
        }
    };
    let before = diags.len();
    let kubernetes = raw
        .kubernetes
        .as_ref()
        .and_then(|k| version(file, k, "kubernetes version", diags));
    let addons = versions(file, &raw.addons, "addon", diags);
    let policies = versions(file, &raw.policies, "policy", diags);
    let requires_kubernetes = raw
        .requires
        .as_ref()
        .and_then(|r| r.kubernetes.as_ref())
        .and_then(|k| {
            VersionRange::parse(&k.value)
                .map_err(|msg| {
                    diags.error(file, pos(k), format!("invalid requires.kubernetes: {msg}"))
                })
                .ok()
        });
    if raw.kubernetes.is_none() && raw.addons.is_empty() && raw.policies.is_empty() {
        diags.error(
            file,
            pos(&raw.name),
            format!(
                "release `{}` promotes nothing: set kubernetes, addons or policies",
                raw.name.value
            ),
        );
    }
    if diags.len() > before && diags.has_errors() {
        return None;
    }
    Some(Release {
        name: name?,
        description: raw.description,
        kubernetes,
        addons,
        policies,
        requires_kubernetes,
        rollback: raw.rollback,
        source: file.to_owned(),
    })
}

/// One file read from the registry: its path in the repository and its text.
#[derive(Debug, Clone)]
pub struct RegistryFile {
    /// Path inside the repository.
    pub path: String,
    /// Content.
    pub text: String,
}

/// What [`read_registry`] found on the base branch.
#[derive(Debug, Clone)]
pub struct RegistryFiles {
    /// The commit id of the branch head.
    pub commit: String,
    /// Matching files, sorted by path.
    pub files: Vec<RegistryFile>,
    /// Matching paths that are symlinks (never followed).
    pub symlinks: Vec<String>,
}

/// Read every registry file committed on the base branch of a local repository through git2.
pub fn read_registry(gitops: &GitopsSettings) -> Result<RegistryFiles, String> {
    let path = match &gitops.location {
        GitLocation::Local(p) => p,
        GitLocation::Remote(url) => {
            return Err(format!(
                "gitops.url `{}` is remote; reading a remote registry needs ringmaster's mirror, which `validate` and `plan` do not use yet: point gitops.url at a local clone",
                redact_url(url)
            ));
        }
    };
    let repo = git2::Repository::open(path).map_err(|e| {
        format!(
            "gitops.url `{}`: {} is not a git repository ({})",
            gitops.url,
            path.display(),
            e.message()
        )
    })?;
    read_registry_from(&repo, &gitops.branch, &gitops.registry, &gitops.url)
}

/// Read the registry from a branch of an open repository.
pub fn read_registry_from(
    repo: &git2::Repository,
    branch: &str,
    registry: &str,
    label: &str,
) -> Result<RegistryFiles, String> {
    let glob = Glob::new(registry)?;
    let reference = repo
        .find_reference(&format!("refs/heads/{branch}"))
        .map_err(|_| {
            let branches: Vec<String> = repo
                .branches(Some(git2::BranchType::Local))
                .map(|it| {
                    it.filter_map(Result::ok)
                        .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "branch `{branch}` does not exist in {label} (branches: {})",
                if branches.is_empty() {
                    "none".to_owned()
                } else {
                    branches.join(", ")
                }
            )
        })?;
    let commit = reference.peel_to_commit().map_err(|e| {
        format!(
            "branch `{branch}` of {label} does not point at a commit: {}",
            e.message()
        )
    })?;
    let tree = commit
        .tree()
        .map_err(|e| format!("cannot read the tree of {label}@{branch}: {}", e.message()))?;
    let mut found: Vec<(String, git2::Oid)> = Vec::new();
    let mut symlinks = Vec::new();
    let mut walk_error = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        let Ok(name) = entry.name() else {
            return git2::TreeWalkResult::Ok;
        };
        let path = format!("{root}{name}");
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                if glob.could_match_below(&path) {
                    git2::TreeWalkResult::Ok
                } else {
                    git2::TreeWalkResult::Skip
                }
            }
            Some(git2::ObjectType::Blob) if glob.matches(&path) => {
                if entry.filemode() == 0o120_000 {
                    symlinks.push(path);
                } else {
                    found.push((path, entry.id()));
                }
                git2::TreeWalkResult::Ok
            }
            _ => git2::TreeWalkResult::Ok,
        }
    })
    .map_err(|e| {
        walk_error = Some(e.message().to_owned());
        e.message().to_owned()
    })?;
    if let Some(e) = walk_error {
        return Err(e);
    }
    found.sort();
    let mut files = Vec::with_capacity(found.len());
    for (path, oid) in found {
        let blob = repo
            .find_blob(oid)
            .map_err(|e| format!("cannot read {label}@{branch}:{path}: {}", e.message()))?;
        let text = String::from_utf8(blob.content().to_vec())
            .map_err(|_| format!("{label}@{branch}:{path} is not UTF-8 text"))?;
        files.push(RegistryFile { path, text });
    }
    Ok(RegistryFiles {
        commit: commit.id().to_string(),
        files,
        symlinks,
    })
}

/// Hide any credentials embedded in a URL (`https://user:token@host/` → `https://***@host/`).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((creds, host)) if !creds.contains('/') => format!("{scheme}://***@{host}"),
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// How a registry file is named in messages: `<url>@<branch>:<path>`.
pub fn registry_label(gitops: &GitopsSettings, path: &str) -> String {
    format!("{}@{}:{path}", redact_url(&gitops.url), gitops.branch)
}

fn fleet(gitops: &GitopsSettings, files: RegistryFiles, diags: &mut Diagnostics) -> Option<Fleet> {
    for s in &files.symlinks {
        diags.warning(
            &registry_label(gitops, s),
            Pos::FILE,
            "symlink ignored: registry symlinks are not followed",
        );
    }
    if files.files.is_empty() {
        diags.error(
            &format!("{}@{}", redact_url(&gitops.url), gitops.branch),
            Pos::FILE,
            format!(
                "no registry file matches `{}` on branch `{}`",
                gitops.registry, gitops.branch
            ),
        );
        return None;
    }
    let mut clusters: Vec<Cluster> = Vec::with_capacity(files.files.len());
    let mut seen: HashMap<String, String> = HashMap::with_capacity(files.files.len());
    for f in &files.files {
        let label = registry_label(gitops, &f.path);
        let Some(raw) = parse_one::<RawCluster>(&label, &f.text, diags) else {
            continue;
        };
        let Some(c) = cluster(&label, &f.path, raw, diags) else {
            continue;
        };
        if let Some(first) = seen.get(c.id.as_str()) {
            diags.error(
                &label,
                c.pos,
                format!("cluster id `{}` is also used by {first}", c.id),
            );
            continue;
        }
        seen.insert(c.id.as_str().to_owned(), f.path.clone());
        clusters.push(c);
    }
    clusters.sort_by(|a, b| a.id.cmp(&b.id));
    Some(Fleet {
        clusters,
        commit: files.commit,
    })
}

fn cluster(file: &str, path: &str, raw: RawCluster, diags: &mut Diagnostics) -> Option<Cluster> {
    let before = diags.errors().count();
    let id = ClusterId::new(&raw.cluster_id.value)
        .map_err(|msg| diags.error(file, pos(&raw.cluster_id), msg))
        .ok();
    let provider = Provider::parse(&raw.provider.value).or_else(|| {
        let msg = format!("unknown provider `{}`", raw.provider.value);
        match did_you_mean(&raw.provider.value, Provider::NAMES) {
            Some(c) => diags.error_hint(
                file,
                pos(&raw.provider),
                msg,
                format!("did you mean `{c}`?"),
            ),
            None => diags.error_hint(
                file,
                pos(&raw.provider),
                msg,
                format!("use one of {}", Provider::NAMES.join(", ")),
            ),
        }
        None
    });
    let kubernetes = version(file, &raw.kubernetes_version, "kubernetesVersion", diags);
    let addons = versions(file, &raw.addons, "addon", diags);
    let policies = versions(file, &raw.policies, "policy", diags);
    let upgrade_ring = raw.upgrade_ring.as_ref().and_then(|r| {
        RingName::new(&r.value)
            .map_err(|msg| diags.error(file, pos(r), format!("upgradeRing: {msg}")))
            .ok()
    });
    let paused = match &raw.upgrade {
        Some(u) if u.value.paused => match u.value.reason.as_deref().map(str::trim) {
            Some(reason) if !reason.is_empty() => Some(reason.to_owned()),
            _ => {
                diags.error_hint(
                    file,
                    pos(u),
                    "a paused cluster must say why",
                    "add `reason: \"...\"` under `upgrade:`",
                );
                None
            }
        },
        _ => None,
    };
    if diags.errors().count() > before {
        return None;
    }
    let id = id?;
    Some(Cluster {
        kube_context: raw.kube_context.unwrap_or_else(|| id.as_str().to_owned()),
        id,
        provider: provider?,
        service: raw.service,
        region: raw.region,
        environment: raw.environment,
        owner_team: raw.owner_team,
        criticality: raw.criticality,
        labels: raw.labels,
        upgrade_ring,
        kubernetes: kubernetes?,
        addons,
        policies,
        paused,
        path: path.to_owned(),
        pos: pos(&raw.cluster_id),
    })
}

fn membership(
    gitops: &GitopsSettings,
    rings_file: &str,
    ring_set: &RingSet,
    fleet: &Fleet,
    diags: &mut Diagnostics,
) -> Vec<Vec<usize>> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ring_set.rings.len()];
    let by_name: HashMap<&str, usize> = ring_set
        .rings
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let label = registry_label(gitops, &c.path);
        if let Some(explicit) = &c.upgrade_ring {
            match by_name.get(explicit.as_str()) {
                Some(ri) => members[*ri].push(ci),
                None => {
                    let msg = format!(
                        "cluster `{}` names upgradeRing `{explicit}`, which rings.yaml does not define",
                        c.id
                    );
                    match did_you_mean(explicit.as_str(), by_name.keys().copied()) {
                        Some(s) => {
                            diags.error_hint(&label, Pos::FILE, msg, format!("did you mean `{s}`?"))
                        }
                        None => diags.error(&label, Pos::FILE, msg),
                    }
                }
            }
            continue;
        }
        let matching: Vec<usize> = ring_set
            .rings
            .iter()
            .enumerate()
            .filter(|(_, r)| r.selector.matches(c))
            .map(|(i, _)| i)
            .collect();
        match matching.as_slice() {
            [] => diags.error_hint(
                &label,
                c.pos,
                format!(
                    "cluster `{}` is in no ring: no ring's selector matches it",
                    c.id
                ),
                "add a ring whose selector matches it, or set `upgradeRing:`",
            ),
            [one] => members[*one].push(ci),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|i| format!("`{}`", ring_set.rings[*i].name))
                    .collect();
                diags.error_hint(
                    &label,
                    c.pos,
                    format!(
                        "cluster `{}` is in {} rings: {}",
                        c.id,
                        many.len(),
                        names.join(", ")
                    ),
                    "narrow the selectors, or set `upgradeRing:` on the cluster",
                );
            }
        }
    }
    for (r, m) in ring_set.rings.iter().zip(&members) {
        if m.is_empty() {
            diags.warning(
                rings_file,
                r.pos,
                format!("ring `{}` has no clusters", r.name),
            );
        }
    }
    members
}

fn coverage(
    rings_file: &str,
    ring_set: &RingSet,
    fleet: &Fleet,
    membership: &[Vec<usize>],
    diags: &mut Diagnostics,
) {
    if ring_set.coverage.is_empty() {
        return;
    }
    let severity = match ring_set.coverage_mode {
        CoverageMode::Warn => Severity::Warning,
        CoverageMode::Error => Severity::Error,
    };
    let combo = |c: &Cluster| -> Vec<String> {
        ring_set
            .coverage
            .iter()
            .map(|k| {
                k.value(c)
                    .map_or_else(|| "(unset)".to_owned(), |v| v.into_owned())
            })
            .collect()
    };
    let mut seen_combos: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut seen_values: Vec<BTreeSet<String>> = vec![BTreeSet::new(); ring_set.coverage.len()];
    for (ri, ring) in ring_set.rings.iter().enumerate() {
        let mut new_combos: BTreeMap<Vec<String>, Vec<&str>> = BTreeMap::new();
        let clusters: Vec<&Cluster> = membership[ri]
            .iter()
            .filter_map(|i| fleet.clusters.get(*i))
            .collect();
        for c in &clusters {
            let k = combo(c);
            if ri > 0 && !seen_combos.contains(&k) {
                new_combos.entry(k).or_default().push(c.id.as_str());
            }
        }
        for (k, ids) in new_combos {
            let desc: Vec<String> = ring_set
                .coverage
                .iter()
                .zip(&k)
                .map(|(f, v)| format!("{f}={v}"))
                .collect();
            let unseen: Vec<String> = ring_set
                .coverage
                .iter()
                .zip(&k)
                .enumerate()
                .filter(|(i, _)| !seen_values[*i].contains(&k[*i]))
                .map(|(_, (f, v))| format!("{f}={v}"))
                .collect();
            let why = if unseen.is_empty() {
                "no earlier ring has that combination".to_owned()
            } else {
                format!("no earlier ring has a cluster with {}", unseen.join(" or "))
            };
            diags.push(
                severity,
                rings_file,
                ring.pos,
                format!(
                    "coverage: ring `{}` has {} ({}); {why}",
                    ring.name,
                    desc.join(", "),
                    ids.join(", ")
                ),
                None,
            );
        }
        for c in &clusters {
            let k = combo(c);
            for (i, v) in k.iter().enumerate() {
                seen_values[i].insert(v.clone());
            }
            seen_combos.insert(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_url_forms() {
        assert!(is_scp_like("git@github.com:acme/gitops.git"));
        assert!(!is_scp_like("./gitops"));
        assert!(!is_scp_like("C:/x"));
        assert!(is_loopback_http("http://127.0.0.1:8080/api"));
        assert!(is_loopback_http("http://localhost/"));
        assert!(is_loopback_http("http://[::1]:9/"));
        assert!(!is_loopback_http("http://github.example.com/api"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.com/"));
    }

    #[test]
    fn redacts_credentials_in_urls() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_secret@github.com/acme/r.git"),
            "https://***@github.com/acme/r.git"
        );
        assert_eq!(
            redact_url("https://github.com/acme/r.git"),
            "https://github.com/acme/r.git"
        );
    }
}
