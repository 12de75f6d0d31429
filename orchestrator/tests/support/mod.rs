//! Shared setup of the integration tests: the example fleet with a bare GitOps remote, and the
//! engine with the configuration loaded from its mirror.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use orchestrator::gitops::mirror::Mirror;
use orchestrator::gitops::{GitOps, MirrorGitOps};
use rings::Config;

/// The example fleet materialised in a temp dir, its GitOps repository cloned bare to
/// `remote.git`, and `gitops.url` pointed at it.
pub struct Example {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// The setup directory (holds `ringmaster.yaml`).
    pub dir: PathBuf,
    /// The bare remote.
    pub remote: PathBuf,
}

impl Example {
    /// Build it.
    pub fn with_bare_remote() -> Example {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
        let dir = cfg.parent().unwrap().to_path_buf();
        let remote = dir.join("remote.git");
        git2::build::RepoBuilder::new()
            .bare(true)
            .clone(dir.join("gitops").to_str().unwrap(), &remote)
            .unwrap();
        let settings = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("url: ./gitops", "url: ./remote.git");
        std::fs::write(&cfg, settings).unwrap();
        Example { tmp, dir, remote }
    }

    /// `ringmaster.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("ringmaster.yaml")
    }
}

/// The engine over the mirror of the setup's GitOps repository.
pub fn engine(config_path: &Path) -> MirrorGitOps {
    let settings = rings::load::load_settings(config_path).unwrap();
    let mirror = Mirror::open(
        &settings.data_dir,
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )
    .unwrap();
    MirrorGitOps::new(
        mirror,
        "main",
        ("ringmaster".into(), "ringmaster@example.invalid".into()),
    )
}

/// Fetch, then load the configuration with the registry read from the mirror's base branch.
pub fn load(engine: &mut MirrorGitOps, config_path: &Path) -> (git2::Oid, Config) {
    let base = engine.refresh().unwrap();
    let repo = engine.mirror().repo();
    let loaded = rings::load::load_with(config_path, &mut |g| {
        rings::load::read_registry_ref(
            repo,
            "refs/remotes/origin/main",
            &g.branch,
            &g.registry,
            "remote",
        )
    })
    .unwrap();
    assert_eq!(loaded.config.fleet.commit, base.to_string());
    (base, loaded.config)
}

/// GitHub's `X-Hub-Signature-256` header for `body` signed with `secret`.
pub fn signed(secret: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
