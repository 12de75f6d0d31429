//! `ringmaster validate` checks every edit target (issue 17 item 4): for every cluster an
//! `edits:` rule applies to in any release and ring, the rule's file exists on the base branch
//! and its locator finds exactly one value; the registry entries' own edits too. Every problem
//! is reported in one run, naming the rule (`rings.yaml:line:col`), the cluster and the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A Terraform file with the Kubernetes version (one regex match) and a CoreDNS Helm release
/// (the yamlPath), for every AWS cluster; Azure clusters have neither.
const RULES: &str = "edits:
  - when: { provider: aws }
    kubernetes: { file: \"terraform/eks/{clusterId}.tfvars\", regex: 'cluster_version\\s*=\\s*\"(?P<version>[^\"]+)\"' }
  - addon: coredns
    when: { provider: aws }
    file: \"helm/{clusterId}/coredns.yaml\"
    yamlPath: \".spec.chart.spec.version\"
";

const AWS: [&str; 8] = [
    "aws-apse1-prod-01",
    "aws-euw1-prod-01",
    "aws-euw1-stg-01",
    "aws-use1-dev-01",
    "aws-use1-prod-canary-01",
    "aws-use1-prod-platform-01",
    "aws-use1-prod-platform-02",
    "aws-use1-sbx-01",
];

const GOOD_TFVARS: &str = "name = \"x\"\ncluster_version = \"1.32\"\n";
const GOOD_COREDNS: &str =
    "# CoreDNS\nspec:\n  chart:\n    spec:\n      chart: coredns\n      version: 1.11.3\n";

fn ringmaster(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// Commit `files` (path → `Some(content)`, or `None` to delete) on `main` of the GitOps repo.
fn commit(repo_dir: &Path, files: &[(String, Option<String>)]) {
    let repo = git2::Repository::open(repo_dir).unwrap();
    let parent = repo
        .find_commit(repo.refname_to_id("refs/heads/main").unwrap())
        .unwrap();
    let mut index = repo.index().unwrap();
    index.read_tree(&parent.tree().unwrap()).unwrap();
    for (path, content) in files {
        match content {
            Some(text) => {
                let full = repo_dir.join(path);
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, text).unwrap();
                index.add_path(Path::new(path)).unwrap();
            }
            None => index.remove_path(Path::new(path)).unwrap(),
        }
    }
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("platform", "platform@example.invalid").unwrap();
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "edit targets",
        &tree,
        &[&parent],
    )
    .unwrap();
}

/// The example fleet with `RULES` appended to its ring file and every AWS cluster's two
/// edit targets committed, clean; returns (tempdir, fleet dir, line of the first rule).
fn example_with_rules() -> (tempfile::TempDir, PathBuf, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let dir = cfg.parent().unwrap().to_path_buf();
    let mut rings = std::fs::read_to_string(dir.join("rings.yaml")).unwrap();
    if !rings.ends_with('\n') {
        rings.push('\n');
    }
    // `edits:` is the next line; the first rule's `when` the one after.
    let first_rule = rings.lines().count() + 2;
    rings.push_str(RULES);
    std::fs::write(dir.join("rings.yaml"), rings).unwrap();
    let mut files = Vec::new();
    for id in AWS {
        files.push((
            format!("terraform/eks/{id}.tfvars"),
            Some(GOOD_TFVARS.to_owned()),
        ));
        files.push((
            format!("helm/{id}/coredns.yaml"),
            Some(GOOD_COREDNS.to_owned()),
        ));
    }
    commit(&dir.join("gitops"), &files);
    (tmp, dir, first_rule)
}

#[test]
fn validate_accepts_edit_rules_whose_targets_all_resolve() {
    let (_tmp, dir, _) = example_with_rules();
    let out = ringmaster(&dir, &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: 15 clusters, 4 rings, 4 releases"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn validate_reports_every_edit_target_that_cannot_be_edited() {
    let (_tmp, dir, first) = example_with_rules();
    let second = first + 2;
    let gitops = dir.join("gitops");
    let registry =
        std::fs::read_to_string(gitops.join("clusters/azure/azr-weu-dev-01/cluster.yaml"))
            .unwrap()
            .replacen("kubernetesVersion: 1.32", "kubernetesVersion: &kv 1.32", 1);
    commit(
        &gitops,
        &[
            // The regex matches twice here and not at all in the next file.
            (
                "terraform/eks/aws-use1-dev-01.tfvars".to_owned(),
                Some("cluster_version = \"1.32\"\ncluster_version = \"1.32\"\n".to_owned()),
            ),
            (
                "terraform/eks/aws-euw1-stg-01.tfvars".to_owned(),
                Some("kubernetes_version = \"1.32\"\n".to_owned()),
            ),
            ("terraform/eks/aws-use1-sbx-01.tfvars".to_owned(), None),
            (
                "helm/aws-use1-prod-canary-01/coredns.yaml".to_owned(),
                Some("spec:\n  chart:\n    version: 1.11.3\n".to_owned()),
            ),
            (
                "clusters/azure/azr-weu-dev-01/cluster.yaml".to_owned(),
                Some(registry),
            ),
        ],
    );
    let out = ringmaster(&dir, &["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(text(&out.stdout), "");
    let k8s = "edit rule (kubernetes → terraform/eks/{clusterId}.tfvars)";
    let coredns = "edit rule (addon/coredns → helm/{clusterId}/coredns.yaml)";
    let expected = [
        format!(
            "rings.yaml:{first}:5: error: {k8s}: cluster `aws-euw1-stg-01`: file `terraform/eks/aws-euw1-stg-01.tfvars`: regex matches 0 times, must match exactly once (release `k8s-1.33`, ring `nonprod`)"
        ),
        format!(
            "rings.yaml:{first}:5: error: {k8s}: cluster `aws-use1-dev-01`: file `terraform/eks/aws-use1-dev-01.tfvars`: regex matches 2 times, must match exactly once (release `k8s-1.33`, ring `nonprod`)"
        ),
        format!(
            "rings.yaml:{first}:5: error: {k8s}: cluster `aws-use1-sbx-01`: file `terraform/eks/aws-use1-sbx-01.tfvars` does not exist on main (release `k8s-1.33`, ring `sandbox`)"
        ),
        format!(
            "rings.yaml:{second}:5: error: {coredns}: cluster `aws-use1-prod-canary-01`: file `helm/aws-use1-prod-canary-01/coredns.yaml`: yamlPath `spec.chart.spec.version` not found (release `addons-2026-11`, ring `prod-canary`)"
        ),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    for line in &expected {
        assert!(
            lines.contains(&line.as_str()),
            "missing {line}\nin:\n{stderr}"
        );
    }
    // The registry entry's own edit, named by the registry file (it has no rule).
    assert!(
        lines.iter().any(|l| l.starts_with(
            "./gitops@main:clusters/azure/azr-weu-dev-01/cluster.yaml: error: registry entry (kubernetes): cluster `azr-weu-dev-01`: file `clusters/azure/azr-weu-dev-01/cluster.yaml`: yamlPath `kubernetesVersion` cannot be edited safely"
        ) && l.ends_with("(release `k8s-1.33`, ring `nonprod`)")),
        "{stderr}"
    );
    // The rules' `when` leaves the Azure clusters out: none of their (absent) files is checked.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("edit rule") && l.contains("azr-")),
        "{stderr}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(": error: ")).count(),
        5,
        "{stderr}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("ringmaster.yaml invalid: 5 edits cannot be made on ./gitops@main at "),
        "{stderr}"
    );

    let json = ringmaster(&dir, &["validate", "--output", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let targets = v["editTargets"].as_array().unwrap();
    assert_eq!(targets.len(), 5, "{v:#}");
    let twice = targets
        .iter()
        .find(|t| t["cluster"] == "aws-use1-dev-01")
        .unwrap();
    assert_eq!(twice["rule"], format!("rings.yaml:{first}:5"));
    assert_eq!(twice["file"], "terraform/eks/aws-use1-dev-01.tfvars");
    assert_eq!(twice["release"], "k8s-1.33");
    assert_eq!(twice["ring"], "nonprod");
    assert_eq!(twice["component"], "kubernetes");
    assert_eq!(
        twice["problem"],
        "regex matches 2 times, must match exactly once"
    );
    let registry = targets
        .iter()
        .find(|t| t["cluster"] == "azr-weu-dev-01")
        .unwrap();
    assert_eq!(registry["rule"], Value::Null);
    assert_eq!(
        registry["file"],
        "clusters/azure/azr-weu-dev-01/cluster.yaml"
    );
}

/// A rule whose file template cannot be rendered for a cluster it applies to (a label the
/// cluster lacks) is an error naming the rule and the cluster.
#[test]
fn validate_names_the_rule_and_cluster_a_template_cannot_render_for() {
    let (_tmp, dir, first) = example_with_rules();
    let rings = std::fs::read_to_string(dir.join("rings.yaml"))
        .unwrap()
        .replace(
            "terraform/eks/{clusterId}.tfvars",
            "terraform/{labels.account}/{clusterId}.tfvars",
        );
    std::fs::write(dir.join("rings.yaml"), rings).unwrap();
    let out = ringmaster(&dir, &["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "rings.yaml:{first}:5: error: edit rule for kubernetes: cluster `aws-use1-dev-01` has no `labels.account`"
        )),
        "{stderr}"
    );
}
