//! `ringmaster.yaml` → [`Settings`].

#[allow(clippy::wildcard_imports)]
use super::*;
pub(super) fn settings(
    file: &str,
    path: &Path,
    base: &Path,
    raw: RawSettings,
    diags: &mut Diagnostics,
) -> Option<Settings> {
    check_header(file, &raw.api_version, &raw.kind, "Orchestrator", diags);
    let mut secret_files = Vec::new();
    let gitops = gitops(file, base, raw.gitops, &mut secret_files, diags);
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
            (Some(gh), None) => {
                github(file, base, gh, &mut secret_files, diags).unwrap_or(ForgeSettings::Local)
            }
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
    if let Err(msg) = Glob::new(releases_glob)
        && let Some(r) = &raw.releases
    {
        diags.error(file, pos(r), format!("invalid `releases` glob: {msg}"));
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
    if reconcile_interval < TimeDelta::seconds(1)
        && let Some(r) = &raw.reconcile_interval
    {
        diags.error(file, pos(r), "reconcileInterval must be at least 1s");
    }
    let api = raw.api.unwrap_or_default();
    let api_listen = api
        .listen
        .as_ref()
        .map_or(DEFAULT_API_LISTEN.to_owned(), |l| l.value.clone());
    if let Some(l) = &api.listen
        && l.value.parse::<std::net::SocketAddr>().is_err()
    {
        diags.error(
            file,
            pos(l),
            format!(
                "api.listen `{}` is not an address like 127.0.0.1:9464",
                l.value
            ),
        );
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
        data_dir: base.join(
            raw.data_dir
                .as_ref()
                .map_or(".ringmaster", |d| d.value.as_str()),
        ),
        kubeconfig: raw
            .kube
            .and_then(|k| k.kubeconfig)
            .map(|k| expand_home(base, &k)),
        api_listen,
        api_token: secret(
            file,
            base,
            "api",
            ("tokenEnv", api.token_env.as_ref()),
            ("tokenFile", api.token_file.as_ref()),
            &mut secret_files,
            diags,
        ),
        secret_files,
        reconcile_interval,
        author,
    })
}

pub(super) fn gitops(
    file: &str,
    base: &Path,
    raw: RawGitops,
    secret_files: &mut Vec<SecretFile>,
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
    if let Some(b) = &raw.branch
        && git2::Branch::name_is_valid(&b.value)
            .map(|ok| !ok)
            .unwrap_or(true)
    {
        diags.error(
            file,
            pos(b),
            format!("gitops.branch `{}` is not a valid branch name", b.value),
        );
    }
    let registry = raw
        .registry
        .as_ref()
        .map_or(DEFAULT_REGISTRY_GLOB.to_owned(), |r| r.value.clone());
    if let Err(msg) = Glob::new(&registry)
        && let Some(r) = &raw.registry
    {
        diags.error(file, pos(r), format!("invalid gitops.registry glob: {msg}"));
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
            } else if let Some(src) = secret(
                file,
                base,
                "gitops.auth",
                ("tokenEnv", a.token_env.as_ref()),
                ("tokenFile", a.token_file.as_ref()),
                secret_files,
                diags,
            ) {
                GitAuth::Token(src)
            } else if let Some(k) = a.ssh_key_file {
                let full = expand_home(base, &k.value);
                secret_files.push(SecretFile {
                    key: "gitops.auth.sshKeyFile".to_owned(),
                    alternative: "sshAgent: true".to_owned(),
                    written: k.value.clone(),
                    path: full.clone(),
                    pos: pos(&k),
                });
                GitAuth::SshKey(full)
            } else {
                GitAuth::SshAgent
            }
        }
    };
    if matches!(auth, GitAuth::Token(_)) && url.starts_with("http://") && !is_loopback_http(&url) {
        diags.error_hint(
            file,
            pos(&raw.url),
            format!(
                "gitops.url `{}` is plain http but gitops.auth sends a token",
                redact_url(&url)
            ),
            "use https (plain http is accepted only for loopback addresses)",
        );
    }
    Some(GitopsSettings {
        url,
        location,
        branch,
        registry,
        auth,
    })
}

/// `./gitops` → `gitops` (so messages do not show `dir/./gitops`).
pub(super) fn clean_relative(p: &str) -> PathBuf {
    Path::new(p)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `git@github.com:acme/repo.git` style.
pub(super) fn is_scp_like(url: &str) -> bool {
    match url.split_once(':') {
        Some((host, path)) => host.contains('@') && !host.contains('/') && !path.is_empty(),
        None => false,
    }
}

pub(super) fn is_loopback_http(url: &str) -> bool {
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

pub(super) fn github(
    file: &str,
    base: &Path,
    gh: S<RawGithub>,
    secret_files: &mut Vec<SecretFile>,
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
        secret(
            file,
            base,
            "forge.github",
            ("tokenEnv", gh.token_env.as_ref()),
            ("tokenFile", gh.token_file.as_ref()),
            secret_files,
            diags,
        ),
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
        (None, Some(app)) => {
            let full = expand_home(base, &app.private_key_file.value);
            secret_files.push(SecretFile {
                key: "forge.github.app.privateKeyFile".to_owned(),
                alternative: "a token (tokenEnv)".to_owned(),
                written: app.private_key_file.value.clone(),
                path: full.clone(),
                pos: pos(&app.private_key_file),
            });
            GitHubAuth::App {
                app_id: app.app_id,
                private_key_file: full,
                installation_id: app.installation_id,
            }
        }
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
    let webhook_secret = secret(
        file,
        base,
        "forge.github",
        ("webhookSecretEnv", gh.webhook_secret_env.as_ref()),
        ("webhookSecretFile", gh.webhook_secret_file.as_ref()),
        secret_files,
        diags,
    );
    Some(ForgeSettings::GitHub(GitHubSettings {
        owner: gh.owner.value,
        repo: gh.repo.value,
        api_url,
        auth,
        merge_method,
        webhook_secret,
    }))
}

/// Where a secret comes from: the environment variable or the file, not both (which one would
/// win is a guess the reader should not have to make). A file is recorded in `secret_files`
/// for [`super::missing_secret_files`]: whether it is there is a fact about the machine the
/// daemon runs on, which `validate` checks and a plain load (CI, tests) does not.
fn secret(
    file: &str,
    base: &Path,
    what: &str,
    (env_key, env): (&str, Option<&S<String>>),
    (file_key, path): (&str, Option<&S<String>>),
    secret_files: &mut Vec<SecretFile>,
    diags: &mut Diagnostics,
) -> Option<SecretSource> {
    if let (Some(_), Some(p)) = (env, path) {
        diags.error(
            file,
            pos(p),
            format!("{what}: set {env_key} or {file_key}, not both"),
        );
    }
    if let Some(e) = env {
        return Some(SecretSource::Env(e.value.clone()));
    }
    let p = path?;
    let full = expand_home(base, &p.value);
    secret_files.push(SecretFile {
        key: format!("{what}.{file_key}"),
        alternative: env_key.to_owned(),
        written: p.value.clone(),
        path: full.clone(),
        pos: pos(p),
    });
    Some(SecretSource::File(full))
}
