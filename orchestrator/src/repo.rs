//! Opening the GitOps repository for the CLI: the local repository itself for a local
//! `gitops.url`, ringmaster's mirror (fetched) for a remote one.

use std::path::Path;

use git2::{Oid, Repository};
use rings::model::GitLocation;
use rings::{Diagnostics, Loaded};

use crate::output::print_diagnostics;

/// A repository with the base branch head the registry is read from.
pub struct BaseRepo {
    repo: Repository,
    refname: String,
    base: Oid,
}

impl BaseRepo {
    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The base commit.
    pub fn base(&self) -> Oid {
        self.base
    }

    /// Load the configuration with the registry read at the base commit of this repository.
    pub fn load(&self, config: &Path) -> Result<Loaded, Diagnostics> {
        rings::load::load_with(config, &mut |g| {
            rings::load::read_registry_ref(
                &self.repo,
                &self.refname,
                &g.branch,
                &g.registry,
                &rings::load::redact_url(&g.url),
            )
        })
    }

    /// From now on, new objects go to memory only: nothing is written to the repository.
    pub fn in_memory(&self) -> anyhow::Result<()> {
        self.repo.odb()?.add_new_mempack_backend(1000)?;
        Ok(())
    }
}

/// Open the repository named by `ringmaster.yaml`'s `gitops` section. Problems with the file
/// itself are printed and give `None`.
pub fn open_base(config: &Path) -> anyhow::Result<Option<BaseRepo>> {
    let settings = match rings::load::load_settings(config) {
        Ok(s) => s,
        Err(diags) => {
            print_diagnostics(&diags);
            return Ok(None);
        }
    };
    let g = &settings.gitops;
    match &g.location {
        GitLocation::Local(path) => {
            let repo = Repository::open(path).map_err(|e| {
                anyhow::anyhow!(
                    "gitops.url `{}`: {} is not a git repository ({})",
                    g.url,
                    path.display(),
                    e.message()
                )
            })?;
            let refname = format!("refs/heads/{}", g.branch);
            let base = repo.refname_to_id(&refname).map_err(|_| {
                anyhow::anyhow!("branch `{}` does not exist in {}", g.branch, g.url)
            })?;
            Ok(Some(BaseRepo {
                repo,
                refname,
                base,
            }))
        }
        GitLocation::Remote(_) => {
            let mirror = orchestrator::gitops::mirror::Mirror::open(
                &settings.data_dir,
                &g.location,
                g.auth.clone(),
            )?;
            let base = mirror.fetch(&g.branch)?;
            let repo = Repository::open_bare(mirror.path())?;
            Ok(Some(BaseRepo {
                repo,
                refname: format!("refs/remotes/origin/{}", g.branch),
                base,
            }))
        }
    }
}
