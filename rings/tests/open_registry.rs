#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The registry as platform teams write it (issue 17): every field ringmaster does not know is
//! kept and can be selected on; a near-typo of a known field is still an error.

use std::path::Path;

const SETTINGS: &str =
    "apiVersion: ringmaster/v1\nkind: Orchestrator\ngitops: { url: ./gitops, branch: main }\n";

const RELEASES: &str = "apiVersion: ringmaster/v1
kind: Release
name: k8s-1.33
kubernetes: \"1.33\"
---
apiVersion: ringmaster/v1
kind: Release
name: cert-manager-1.16.3
controllers: { cert-manager: \"1.16.3\" }
";

/// A registry entry with the fields a mature platform keeps.
fn mature(id: &str, provider: &str, channel: &str, purpose: &str) -> String {
    format!(
        "clusterId: {id}
provider: {provider}
service: {service}
region: eu-west-1
environment: prod
ownerTeam: platform-runtime
criticality: tier-1
purpose: {purpose}
networkMode: {network}
identityMode: workload-identity
entrypoint: ingress-internal
observabilityProfile: prod-standard
policyProfile: restricted
backupProfile: velero-daily
upgradeChannel: {channel}
providerVersionPolicy: standard-support
nextUpgradeWindow: 2026-08-15
riskStatus: api-deprecation-scan-clean
costCenter: 4711
dr: {{ scope: regional, pairedRegion: eu-central-1 }}
kubernetesVersion: \"1.32\"
controllers:
  argocd: \"2.13.1\"
  external-dns: \"0.15.0\"
  cert-manager: \"1.16.2\"
  karpenter: \"1.1.1\"
",
        service = if provider == "aws" { "eks" } else { "aks" },
        network = if provider == "aws" {
            "vpc-cni-prefix-delegation"
        } else {
            "azure-cni-overlay"
        },
    )
}

fn setup(rings: &str, clusters: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let full = dir.path().join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    };
    write("ringmaster.yaml", SETTINGS);
    write("rings.yaml", rings);
    write("releases/all.yaml", RELEASES);
    let repo = git2::Repository::init(dir.path().join("gitops")).unwrap();
    let mut index = repo.index().unwrap();
    for (id, text) in clusters {
        let rel = format!("clusters/{id}/cluster.yaml");
        write(&format!("gitops/{rel}"), text);
        index.add_path(Path::new(&rel)).unwrap();
    }
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig =
        git2::Signature::new("t", "t@example.invalid", &git2::Time::new(1_700_000_000, 0)).unwrap();
    repo.commit(Some("refs/heads/main"), &sig, &sig, "registry", &tree, &[])
        .unwrap();
    dir
}

const RINGS: &str = "apiVersion: ringmaster/v1
kind: RingSet
coverage: [provider]
coverageMode: error
rings:
  - name: early
    selector: { upgradeChannel: rapid }
  - name: platform
    selector: { upgradeChannel: stable, purpose: shared-platform }
  - name: rest
    selector: { upgradeChannel: stable, purpose: [data-streaming, payments] }
observe:
  controllers:
    cert-manager: { kind: Deployment, namespace: cert-manager, name: cert-manager, container: cert-manager-controller }
";

fn fleet() -> Vec<(&'static str, String)> {
    vec![
        (
            "aws-rapid-1",
            mature("aws-rapid-1", "aws", "rapid", "sandbox"),
        ),
        (
            "azr-rapid-1",
            mature("azr-rapid-1", "azure", "rapid", "sandbox"),
        ),
        (
            "aws-plat-1",
            mature("aws-plat-1", "aws", "stable", "shared-platform"),
        ),
        (
            "azr-plat-1",
            mature("azr-plat-1", "azure", "stable", "shared-platform"),
        ),
        (
            "aws-data-1",
            mature("aws-data-1", "aws", "stable", "data-streaming"),
        ),
        (
            "azr-pay-1",
            mature("azr-pay-1", "azure", "stable", "payments"),
        ),
    ]
}

#[test]
fn a_mature_registry_loads_and_selects_on_its_own_fields() {
    let dir = setup(RINGS, &fleet());
    let loaded = rings::load(&dir.path().join("ringmaster.yaml")).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.sorted()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let c = &loaded.config;
    let members = |i: usize| {
        c.ring_clusters(i)
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(members(0), ["aws-rapid-1", "azr-rapid-1"]);
    assert_eq!(members(1), ["aws-plat-1", "azr-plat-1"]);
    assert_eq!(members(2), ["aws-data-1", "azr-pay-1"]);
    let one = &c.fleet.clusters[0];
    assert_eq!(one.extra.scalar("nextUpgradeWindow"), Some("2026-08-15"));
    assert_eq!(one.extra.scalar("costCenter"), Some("4711"));
    assert_eq!(
        one.extra.get("dr").unwrap().to_json(),
        serde_json::json!({"scope": "regional", "pairedRegion": "eu-central-1"})
    );
    assert_eq!(one.controllers["cert-manager"].as_str(), "1.16.2");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings.sorted());

    // The controller release plans as `controller/cert-manager` only.
    let plan = policies_free_steps(c, "cert-manager-1.16.3");
    assert_eq!(plan, ["controller/cert-manager 1.16.2 -> 1.16.3"; 6]);
}

/// The steps each cluster gets, flattened (without depending on the `policies` crate).
fn policies_free_steps(c: &rings::Config, release: &str) -> Vec<String> {
    let r = c.release(release).unwrap();
    c.fleet
        .clusters
        .iter()
        .flat_map(|cl| {
            r.controllers.iter().filter_map(move |(n, v)| {
                cl.controllers
                    .get(n)
                    .map(|from| format!("controller/{n} {from} -> {v}"))
            })
        })
        .collect()
}

#[test]
fn a_coverage_gap_on_an_own_field_is_found() {
    // Coverage over the organisation's own field: the first ring runs only `rapid`, so the
    // `stable` clusters of the next ring have no earlier ring with their channel.
    let f = fleet();
    let rings = RINGS.replace(
        "coverage: [provider]",
        "coverage: [provider, upgradeChannel]",
    );
    let dir = setup(&rings, &f);
    let d = rings::load(&dir.path().join("ringmaster.yaml")).unwrap_err();
    let text: Vec<String> = d.sorted().iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|l| l.contains("coverage: ring `platform` has provider=aws, upgradeChannel=stable (aws-plat-1); no earlier ring has a cluster with upgradeChannel=stable")),
        "{text:?}"
    );
}

#[test]
fn a_typo_of_a_known_field_is_an_error_with_did_you_mean() {
    let mut f = fleet();
    f[2].1 = f[2]
        .1
        .replace("kubernetesVersion:", "kubernetesVersoin:")
        .replace("controllers:", "controller:");
    let dir = setup(RINGS, &f);
    let d = rings::load(&dir.path().join("ringmaster.yaml")).unwrap_err();
    let text: Vec<String> = d.sorted().iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[0].contains(
            "clusters/aws-plat-1/cluster.yaml:21:1: error: unknown field `kubernetesVersoin`"
        ),
        "{text:?}"
    );
    assert!(
        text[0].ends_with("(did you mean `kubernetesVersion`?)"),
        "{text:?}"
    );
    assert!(
        text[1].contains("cluster.yaml:22:1: error: unknown field `controller`"),
        "{text:?}"
    );
    assert!(
        text[1].ends_with("(did you mean `controllers`?)"),
        "{text:?}"
    );
}

#[test]
fn a_selector_on_a_field_no_cluster_has_is_a_warning_with_a_suggestion() {
    let rings = RINGS.replace(
        "{ upgradeChannel: stable, purpose: shared-platform }",
        "{ upgradeChanel: stable }",
    );
    let dir = setup(&rings, &fleet());
    let loaded = rings::load(&dir.path().join("ringmaster.yaml"));
    let diags = match loaded {
        Ok(l) => l.warnings,
        Err(d) => d,
    };
    let text: Vec<String> = diags.sorted().iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|l| l.contains("rings.yaml:8:11: warning: ring `platform`'s selector names registry field `upgradeChanel`, which no cluster has as a value (did you mean `upgradeChannel`?)")),
        "{text:?}"
    );
    // A selector naming a near-typo of a known field is refused outright.
    let rings = RINGS.replace("{ upgradeChannel: rapid }", "{ enviroment: prod }");
    let dir = setup(&rings, &fleet());
    let d = rings::load(&dir.path().join("ringmaster.yaml")).unwrap_err();
    let text: Vec<String> = d.sorted().iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|l| l.contains("did you mean `environment`?")),
        "{text:?}"
    );
}

#[test]
fn own_fields_fill_edit_file_templates() {
    let rings = format!(
        "{RINGS}edits:\n  - controller: cert-manager\n    file: \"platform/{{policyProfile}}/{{clusterId}}.yaml\"\n    yamlPath: .certManager.version\n"
    );
    let dir = setup(&rings, &fleet());
    let loaded = rings::load(&dir.path().join("ringmaster.yaml")).unwrap();
    let rule = &loaded.config.ring_set.edits[0];
    assert_eq!(rule.target.to_string(), "controller/cert-manager");
    assert_eq!(
        rule.file.render(&loaded.config.fleet.clusters[0]).unwrap(),
        "platform/restricted/aws-data-1.yaml"
    );
}
