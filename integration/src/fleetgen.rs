//! Generated fleets of any size, committed to a real (bare) git repository, for benchmarks and
//! scale tests. The ring file and releases are the shipped example's, so generated clusters
//! carry the environment and criticality values its selectors use.

use std::path::{Path, PathBuf};

use git2::{FileMode, Oid, Repository, Signature, Time};

/// One generated registry entry.
pub fn cluster_yaml(i: usize) -> (String, &'static str, String) {
    let (provider, service, region) = if i % 3 == 2 {
        ("azure", "aks", ["westeurope", "northeurope"][i % 2])
    } else {
        (
            "aws",
            "eks",
            ["us-east-1", "eu-west-1", "ap-southeast-1"][i % 3],
        )
    };
    // 1 % sandbox, 9 % dev/staging, 10 % prod tier-2, 80 % prod tier-1.
    let (environment, criticality) = match i % 100 {
        0 => ("sandbox", "tier-3"),
        1..=4 => ("dev", "tier-3"),
        5..=9 => ("staging", "tier-3"),
        10..=19 => ("prod", "tier-2"),
        _ => ("prod", "tier-1"),
    };
    let id = format!("gen-{provider}-{i:07}");
    let k8s = if i.is_multiple_of(7) { "1.31" } else { "1.32" };
    let addons = if provider == "aws" {
        "  coredns: \"1.11.3-eksbuild.2\"\n  vpc-cni: \"1.19.0-eksbuild.1\"\n  kube-proxy: \"1.32.0-eksbuild.2\"\n"
    } else {
        "  coredns: \"1.11.3\"\n  keda: \"2.15.1\"\n"
    };
    let policy = if environment == "prod" {
        "restricted-prod: \"2.3.1\""
    } else {
        "baseline-nonprod: \"1.8.0\""
    };
    // The fields a mature platform keeps beside ringmaster's (issue 17): ringmaster reads
    // them as they are, so the benchmark parses them too.
    let platform = if provider == "aws" {
        "networkMode: vpc-cni-prefix-delegation\nidentityMode: eks-pod-identity\nentrypoint: alb-internal\n\
         providerVersionPolicy: eks-standard-support\n"
    } else {
        "networkMode: azure-cni-overlay\nidentityMode: workload-identity\nentrypoint: agic\n\
         providerVersionPolicy: aks-lts\n"
    };
    let text = format!(
        "# generated cluster {i}\nclusterId: {id}\nprovider: {provider}\nservice: {service}\nregion: {region}\n\
         environment: {environment}\nownerTeam: team-{team}\ncriticality: {criticality}\n\
         purpose: {purpose}\n{platform}observabilityProfile: {environment}-standard\n\
         policyProfile: {policy_profile}\nbackupProfile: velero-{backup}\nupgradeChannel: {channel}\n\
         nextUpgradeWindow: 2026-{month:02}-15\nriskStatus: api-deprecation-scan-clean\n\
         labels: {{ cell: cell-{cell} }}\nkubernetesVersion: \"{k8s}\"\naddons:\n{addons}\
         controllers:\n  argocd: \"2.13.1\"\n  cert-manager: \"1.16.2\"\n  external-dns: \"0.15.0\"\n\
         policies:\n  {policy}\n",
        team = i % 40,
        cell = ["a", "b", "c"][i % 3],
        purpose = [
            "shared-platform",
            "data-streaming",
            "internal-apis",
            "batch"
        ][i % 4],
        policy_profile = if environment == "prod" {
            "restricted"
        } else {
            "baseline"
        },
        backup = if environment == "prod" {
            "daily"
        } else {
            "none"
        },
        channel = ["stable", "regular", "rapid"][i % 3],
        month = 1 + i % 12,
    );
    (id, provider, text)
}

/// Commit a registry of `n` clusters (`clusters/<provider>/<id>/cluster.yaml`) to branch `main`
/// of a new bare repository at `repo_path`. Returns the commit id.
pub fn generate_registry(repo_path: &Path, n: usize) -> Result<Oid, git2::Error> {
    let repo = Repository::init_bare(repo_path)?;
    let mut providers: Vec<(&'static str, Vec<(String, Oid)>)> =
        vec![("aws", Vec::new()), ("azure", Vec::new())];
    for i in 0..n {
        let (id, provider, text) = cluster_yaml(i);
        let blob = repo.blob(text.as_bytes())?;
        let mut dir = repo.treebuilder(None)?;
        dir.insert("cluster.yaml", blob, FileMode::Blob.into())?;
        let dir = dir.write()?;
        if let Some((_, list)) = providers.iter_mut().find(|(p, _)| *p == provider) {
            list.push((id, dir));
        }
    }
    let mut clusters = repo.treebuilder(None)?;
    for (provider, list) in &providers {
        let mut pt = repo.treebuilder(None)?;
        for (id, dir) in list {
            pt.insert(id, *dir, FileMode::Tree.into())?;
        }
        clusters.insert(provider, pt.write()?, FileMode::Tree.into())?;
    }
    let mut root = repo.treebuilder(None)?;
    root.insert("clusters", clusters.write()?, FileMode::Tree.into())?;
    let tree = repo.find_tree(root.write()?)?;
    let sig = Signature::new(
        "fleetgen",
        "fleetgen@ringmaster.invalid",
        &Time::new(1_767_225_600, 0),
    )?;
    let commit = repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        &format!("{n} generated clusters"),
        &tree,
        &[],
    )?;
    repo.set_head("refs/heads/main")?;
    pack(&repo, commit)?;
    Ok(commit)
}

/// Move every object into one pack, as a clone or fetch leaves them (loose objects would make
/// reads an order of magnitude more expensive than in any real mirror).
fn pack(repo: &Repository, commit: Oid) -> Result<(), git2::Error> {
    let mut builder = repo.packbuilder()?;
    builder.insert_commit(commit)?;
    let mut buf = git2::Buf::new();
    builder.write_buf(&mut buf)?;
    let odb = repo.odb()?;
    let mut writer = odb.packwriter()?;
    std::io::Write::write_all(&mut writer, &buf)
        .map_err(|e| git2::Error::from_str(&e.to_string()))?;
    writer.commit()?;
    let objects = repo.path().join("objects");
    for entry in std::fs::read_dir(&objects).map_err(|e| git2::Error::from_str(&e.to_string()))? {
        let entry = entry.map_err(|e| git2::Error::from_str(&e.to_string()))?;
        let name = entry.file_name();
        if name.len() == 2
            && name
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| git2::Error::from_str(&e.to_string()))?;
        }
    }
    Ok(())
}

/// Write a complete setup of `n` clusters under `dir`: `ringmaster.yaml`, the example's
/// `rings.yaml` and releases, and a bare GitOps repository. Returns the settings path.
pub fn generate_setup(dir: &Path, n: usize) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("releases"))?;
    let example = examples::fleet_dir();
    std::fs::copy(example.join("rings.yaml"), dir.join("rings.yaml"))?;
    for entry in std::fs::read_dir(example.join("releases"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.join("releases").join(entry.file_name()))?;
    }
    std::fs::write(
        dir.join("ringmaster.yaml"),
        "apiVersion: ringmaster/v1\nkind: Orchestrator\ngitops: { url: ./gitops.git, branch: main }\n",
    )?;
    generate_registry(&dir.join("gitops.git"), n).map_err(std::io::Error::other)?;
    Ok(dir.join("ringmaster.yaml"))
}

/// Commit a repository of `clusters` registry files plus enough other files (application
/// manifests) to reach `total_files`, to branch `main` of a new bare repository, packed.
pub fn generate_big_repo(
    repo_path: &Path,
    clusters: usize,
    total_files: usize,
) -> Result<Oid, git2::Error> {
    generate_registry(repo_path, clusters)?;
    let repo = Repository::open_bare(repo_path)?;
    let head = repo.find_commit(repo.refname_to_id("refs/heads/main")?)?;
    let others = total_files.saturating_sub(clusters);
    let mut apps = repo.treebuilder(None)?;
    let per_team = 1_000;
    let mut team = 0;
    let mut made = 0;
    while made < others {
        let mut team_tree = repo.treebuilder(None)?;
        for j in 0..per_team.min(others - made) {
            let text = format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{j}\n  namespace: team-{team}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example/team-{team}/app-{j}:1.{j}.0\n"
            );
            let blob = repo.blob(text.as_bytes())?;
            let mut dir = repo.treebuilder(None)?;
            dir.insert("deployment.yaml", blob, FileMode::Blob.into())?;
            team_tree.insert(format!("app-{j:04}"), dir.write()?, FileMode::Tree.into())?;
        }
        made += per_team.min(others - made);
        apps.insert(
            format!("team-{team:03}"),
            team_tree.write()?,
            FileMode::Tree.into(),
        )?;
        team += 1;
    }
    let mut root = repo.treebuilder(Some(&head.tree()?))?;
    root.insert("apps", apps.write()?, FileMode::Tree.into())?;
    let tree = repo.find_tree(root.write()?)?;
    let sig = Signature::new(
        "fleetgen",
        "fleetgen@ringmaster.invalid",
        &Time::new(1_767_225_600, 0),
    )?;
    let commit = repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "applications",
        &tree,
        &[&head],
    )?;
    pack(&repo, commit)?;
    Ok(commit)
}
