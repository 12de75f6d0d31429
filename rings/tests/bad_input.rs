#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The bad-input corpus: every case is a small, otherwise valid setup with one or more
//! problems; what `validate` prints for it is snapshot-tested.

use std::path::{Path, PathBuf};

const SETTINGS: &str = "apiVersion: ringmaster/v1
kind: Orchestrator
gitops: { url: ./gitops, branch: main }
";

const RINGS: &str = r#"apiVersion: ringmaster/v1
kind: RingSet
rings:
  - name: canary
    selector: { environment: staging }
    window: { cron: "0 9 * * MON-FRI", duration: 4h, timezone: Europe/Berlin }
    soak: 1h
    gates: [nodes-ready]
  - name: prod
    selector: { environment: prod }
    gates: [nodes-ready]
gates:
  nodes-ready: { kube: { nodesReady: { minRatio: 1.0 } } }
"#;

const RELEASE: &str = "apiVersion: ringmaster/v1
kind: Release
name: k8s-1.33
kubernetes: \"1.33\"
";

fn cluster(id: &str, env: &str) -> String {
    format!(
        "clusterId: {id}\nprovider: aws\nservice: eks\nenvironment: {env}\nkubernetesVersion: \"1.32\"\naddons:\n  coredns: \"1.11.3\"\n"
    )
}

/// A setup on disk: config files plus a committed GitOps repository.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// `overrides`: (path, Some(content)) replaces or adds a file, (path, None) removes it.
    /// Paths under `gitops/` are committed to the repository's `main` branch.
    fn new(overrides: &[(&str, Option<&str>)]) -> Fixture {
        let mut files: Vec<(String, String)> = vec![
            ("ringmaster.yaml".into(), SETTINGS.into()),
            ("rings.yaml".into(), RINGS.into()),
            ("releases/k8s.yaml".into(), RELEASE.into()),
            (
                "gitops/clusters/stg-1/cluster.yaml".into(),
                cluster("stg-1", "staging"),
            ),
            (
                "gitops/clusters/prod-1/cluster.yaml".into(),
                cluster("prod-1", "prod"),
            ),
            (
                "gitops/clusters/prod-2/cluster.yaml".into(),
                cluster("prod-2", "prod"),
            ),
        ];
        for (path, content) in overrides {
            files.retain(|(p, _)| p != path);
            if let Some(c) = content {
                files.push(((*path).to_owned(), (*c).to_owned()));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path().join("gitops")).unwrap();
        let mut index = repo.index().unwrap();
        for (path, content) in &files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
            if let Some(rel) = path.strip_prefix("gitops/") {
                index.add_path(Path::new(rel)).unwrap();
            }
        }
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig =
            git2::Signature::new("t", "t@example.invalid", &git2::Time::new(1_700_000_000, 0))
                .unwrap();
        repo.commit(Some("refs/heads/main"), &sig, &sig, "registry", &tree, &[])
            .unwrap();
        repo.set_head("refs/heads/main").unwrap();
        Fixture { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ringmaster.yaml")
    }

    /// What validate reports, with the temp dir replaced by `<dir>`.
    fn report(&self) -> String {
        let diags = match rings::load(&self.config()) {
            Ok(l) => {
                let mut all = l.warnings;
                all.extend(rings::load::missing_secret_files(&l.config.settings));
                all
            }
            Err(d) => d,
        };
        let root = self.dir.path().display().to_string();
        diags
            .sorted()
            .iter()
            .map(|d| d.to_string().replace(&root, "<dir>"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn case(name: &str, overrides: &[(&str, Option<&str>)]) -> String {
    let report = Fixture::new(overrides).report();
    insta::assert_snapshot!(name, report);
    report
}

#[test]
fn the_base_fixture_is_valid() {
    let f = Fixture::new(&[]);
    let loaded = rings::load(&f.config()).unwrap();
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.config.fleet.clusters.len(), 3);
}

#[test]
fn yaml_syntax() {
    let r = case(
        "yaml_syntax",
        &[(
            "rings.yaml",
            Some("apiVersion: ringmaster/v1\nkind: RingSet\nrings:\n  - name: [canary\n"),
        )],
    );
    assert!(r.contains("rings.yaml:"), "{r}");
}

#[test]
fn unknown_fields_suggest_the_right_name() {
    let rings = RINGS.replace("    soak: 1h", "    sok: 1h");
    let r = case(
        "unknown_fields",
        &[
            ("rings.yaml", Some(&rings)),
            (
                "gitops/clusters/prod-1/cluster.yaml",
                Some(&cluster("prod-1", "prod").replace("kubernetesVersion", "kubernetesVersoin")),
            ),
        ],
    );
    assert!(r.contains("did you mean `soak`?"), "{r}");
    assert!(r.contains("did you mean `kubernetesVersion`?"), "{r}");
    assert!(r.contains("<dir>/rings.yaml:7:5"), "{r}");
}

#[test]
fn ring_and_membership_errors() {
    let rings = RINGS
        .replace("  - name: prod\n", "  - name: canary\n")
        .replace("[nodes-ready]\n  - name", "[nodes-redy]\n  - name");
    let r = case(
        "ring_errors",
        &[
            ("rings.yaml", Some(&rings)),
            (
                "gitops/clusters/dev-1/cluster.yaml",
                Some(&cluster("dev-1", "dev")),
            ),
        ],
    );
    assert!(r.contains("duplicate ring name `canary`"), "{r}");
    assert!(
        r.contains("unknown gate `nodes-redy`") && r.contains("did you mean `nodes-ready`?"),
        "{r}"
    );
    assert!(r.contains("cluster `dev-1` is in no ring"), "{r}");
}

#[test]
fn a_cluster_in_two_rings() {
    let rings = RINGS.replace(
        "selector: { environment: prod }",
        "selector: { provider: aws }",
    );
    let r = case("two_rings", &[("rings.yaml", Some(&rings))]);
    assert!(
        r.contains("cluster `stg-1` is in 2 rings: `canary`, `prod`"),
        "{r}"
    );
}

#[test]
fn schedule_errors() {
    let rings = RINGS.replace(
        r#"window: { cron: "0 9 * * MON-FRI", duration: 4h, timezone: Europe/Berlin }"#,
        r#"window: { cron: "0 9 * * 8", duration: 4x, timezone: Europe/Berlim }"#,
    );
    let r = case("schedule_errors", &[("rings.yaml", Some(&rings))]);
    assert!(r.contains("invalid cron `0 9 * * 8`"), "{r}");
    assert!(r.contains("invalid window duration"), "{r}");
    assert!(
        r.contains("unknown IANA timezone `Europe/Berlim`")
            && r.contains("did you mean `Europe/Berlin`?"),
        "{r}"
    );
}

#[test]
fn version_errors() {
    let release = "apiVersion: ringmaster/v1\nkind: Release\nname: addons\naddons: { coredns: latest }\nrequires: { kubernetes: \">=1.31 <<\" }\n";
    let r = case(
        "version_errors",
        &[
            ("releases/addons.yaml", Some(release)),
            (
                "gitops/clusters/prod-1/cluster.yaml",
                Some(&cluster("prod-1", "prod").replace("\"1.32\"", "one-thirty-two")),
            ),
        ],
    );
    assert!(r.contains("invalid kubernetesVersion"), "{r}");
    assert!(r.contains("invalid addon `coredns` version"), "{r}");
    assert!(r.contains("invalid requires.kubernetes"), "{r}");
}

#[test]
fn cluster_ids_that_could_escape_a_path() {
    let bad = cluster("x", "prod").replace("clusterId: x", "clusterId: \"../../etc/passwd\"");
    let r = case(
        "cluster_id",
        &[("gitops/clusters/prod-1/cluster.yaml", Some(&bad))],
    );
    assert!(
        r.contains("cluster id `../../etc/passwd` contains '.'"),
        "{r}"
    );
}

#[test]
fn registry_problems() {
    let paused = format!("{}upgrade: {{ paused: true }}\n", cluster("prod-2", "prod"));
    let r = case(
        "registry_problems",
        &[
            (
                "gitops/clusters/prod-1/cluster.yaml",
                Some(&cluster("stg-1", "prod").replace("aws", "amazon")),
            ),
            ("gitops/clusters/prod-2/cluster.yaml", Some(&paused)),
        ],
    );
    assert!(r.contains("unknown provider `amazon`"), "{r}");
    assert!(r.contains("a paused cluster must say why"), "{r}");
}

#[test]
fn duplicate_cluster_ids() {
    let r = case(
        "duplicate_cluster",
        &[(
            "gitops/clusters/prod-2/cluster.yaml",
            Some(&cluster("prod-1", "prod")),
        )],
    );
    assert!(
        r.contains("cluster id `prod-1` is also used by clusters/prod-1/cluster.yaml"),
        "{r}"
    );
}

#[test]
fn release_problems() {
    let multi = "apiVersion: ringmaster/v1\nkind: Release\nname: empty\n---\napiVersion: ringmaster/v1\nkind: Release\nname: k8s-1.33\nkubernetes: \"1.33\"\n";
    let r = case("release_problems", &[("releases/more.yaml", Some(multi))]);
    assert!(r.contains("release `empty` promotes nothing"), "{r}");
    assert!(r.contains("duplicate release name `k8s-1.33`"), "{r}");
}

#[test]
fn headers_are_checked() {
    let rings = RINGS
        .replace("kind: RingSet", "kind: Rings")
        .replace("ringmaster/v1", "ringmaster/v2");
    let r = case("headers", &[("rings.yaml", Some(&rings))]);
    assert!(r.contains("unsupported apiVersion `ringmaster/v2`"), "{r}");
    assert!(r.contains("expected kind `RingSet`, found `Rings`"), "{r}");
}

#[test]
fn empty_rings_and_coverage_gaps_are_warnings() {
    let rings = format!(
        "{}coverage: [provider, labels.cell]\n",
        RINGS.replace("  - name: prod\n", "  - name: empty\n    selector: { environment: nowhere }\n    gates: []\n  - name: prod\n")
    );
    let azure = cluster("prod-2", "prod")
        .replace("aws", "azure")
        .replace("eks", "aks");
    let f = Fixture::new(&[
        ("rings.yaml", Some(&rings)),
        ("gitops/clusters/prod-2/cluster.yaml", Some(&azure)),
    ]);
    let loaded = rings::load(&f.config()).unwrap();
    let r = f.report();
    insta::assert_snapshot!("warnings", r);
    assert_eq!(loaded.warnings.errors().count(), 0);
    assert!(r.contains("ring `empty` has no clusters"), "{r}");
    assert!(r.contains("coverage: ring `prod` has provider=azure, labels.cell=(unset) (prod-2); no earlier ring has a cluster with provider=azure"), "{r}");

    // In error mode the same gap refuses the configuration.
    let strict = format!("{rings}coverageMode: error\n");
    let f = Fixture::new(&[
        ("rings.yaml", Some(&strict)),
        ("gitops/clusters/prod-2/cluster.yaml", Some(&azure)),
    ]);
    let diags = rings::load(&f.config()).unwrap_err();
    assert_eq!(diags.errors().count(), 1);
}

#[test]
fn unquoted_versions_are_read_as_written() {
    let f = Fixture::new(&[(
        "gitops/clusters/prod-1/cluster.yaml",
        Some(
            &cluster("prod-1", "prod")
                .replace("\"1.32\"", "1.30")
                .replace("\"1.11.3\"", "1.10"),
        ),
    )]);
    let loaded = rings::load(&f.config()).unwrap();
    let c = loaded
        .config
        .fleet
        .clusters
        .iter()
        .find(|c| c.id.as_str() == "prod-1")
        .unwrap();
    assert_eq!(c.kubernetes.as_str(), "1.30");
    assert_eq!(c.kubernetes.major_minor(), (1, 30));
    assert_eq!(c.addons["coredns"].as_str(), "1.10");
}

#[test]
fn the_registry_is_what_is_committed_on_the_branch() {
    let f = Fixture::new(&[]);
    // An uncommitted file in the working copy is not part of the registry.
    let extra = f.dir.path().join("gitops/clusters/prod-9/cluster.yaml");
    std::fs::create_dir_all(extra.parent().unwrap()).unwrap();
    std::fs::write(&extra, cluster("prod-9", "prod")).unwrap();
    // Nor is an edit that was not committed.
    std::fs::write(
        f.dir.path().join("gitops/clusters/prod-1/cluster.yaml"),
        "garbage: [",
    )
    .unwrap();
    let loaded = rings::load(&f.config()).unwrap();
    let ids: Vec<&str> = loaded
        .config
        .fleet
        .clusters
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, ["prod-1", "prod-2", "stg-1"]);
}

#[test]
fn repository_problems() {
    let settings = SETTINGS.replace("branch: main", "branch: trunk");
    let r = case("missing_branch", &[("ringmaster.yaml", Some(&settings))]);
    assert!(
        r.contains("branch `trunk` does not exist in ./gitops (branches: main)"),
        "{r}"
    );
    let settings = SETTINGS.replace("./gitops", "./nowhere");
    let r = case("not_a_repo", &[("ringmaster.yaml", Some(&settings))]);
    assert!(r.contains("is not a git repository"), "{r}");
}

#[test]
fn a_token_is_never_sent_over_plain_http() {
    let settings = format!(
        "{SETTINGS}forge:\n  github: {{ owner: acme, repo: gitops, apiUrl: \"http://github.example.com/api/v3\", tokenEnv: GITHUB_TOKEN }}\n"
    );
    let r = case("plain_http_api", &[("ringmaster.yaml", Some(&settings))]);
    assert!(r.contains("is not https"), "{r}");
    let loopback = settings.replace("github.example.com", "127.0.0.1:8080");
    assert!(rings::load(&Fixture::new(&[("ringmaster.yaml", Some(&loopback))]).config()).is_ok());
}

#[test]
fn every_problem_is_reported_at_once() {
    let rings = RINGS
        .replace("    soak: 1h", "    soak: forever")
        .replace("minRatio: 1.0", "minRatio: 2");
    let release = RELEASE.replace("\"1.33\"", "\"1.x\"");
    let r = case(
        "many_at_once",
        &[
            ("rings.yaml", Some(&rings)),
            ("releases/k8s.yaml", Some(&release)),
            (
                "gitops/clusters/prod-1/cluster.yaml",
                Some("clusterId: prod-1\nprovider: aws\n"),
            ),
        ],
    );
    assert!(r.lines().count() >= 4, "{r}");
    assert!(r.contains("invalid soak"), "{r}");
    assert!(r.contains("minRatio 2 must be between 0 and 1"), "{r}");
    assert!(r.contains("missing field `kubernetesVersion`"), "{r}");
}

const ADDONS_RELEASE: &str = "apiVersion: ringmaster/v1
kind: Release
name: addons-2026-11
addons: { coredns: \"1.11.4\" }
---
apiVersion: ringmaster/v1
kind: Release
name: restricted-prod-2.4.0
policies: { restricted-prod: \"2.4.0\" }
";

#[test]
fn promoted_components_need_an_observe_entry() {
    let r = case(
        "observe_missing",
        &[("releases/addons.yaml", Some(ADDONS_RELEASE))],
    );
    assert!(
        r.contains("add-on `coredns` (release addons-2026-11, <dir>/releases/addons.yaml) has no `observe.addons.coredns` entry; ringmaster could not tell whether clusters converged"),
        "{r}"
    );
    assert!(
        r.contains("policy bundle `restricted-prod` (release restricted-prod-2.4.0, <dir>/releases/addons.yaml) has no `observe.policies.restricted-prod` entry"),
        "{r}"
    );
    assert!(r.starts_with("<dir>/rings.yaml: error:"), "{r}");
    assert_eq!(r.lines().count(), 2, "{r}");

    // With a block for one of them, only the other is reported, at the block.
    let rings = format!("{RINGS}observe:\n  addons:\n    coredns: {{ kind: Deployment }}\n");
    let r = Fixture::new(&[
        ("rings.yaml", Some(&rings)),
        ("releases/addons.yaml", Some(ADDONS_RELEASE)),
    ])
    .report();
    assert_eq!(r.lines().count(), 1, "{r}");
    assert!(
        r.starts_with("<dir>/rings.yaml:15:3: error: policy bundle `restricted-prod`"),
        "{r}"
    );
}

#[test]
fn observe_entries_are_read_with_their_defaults() {
    let rings = format!(
        "{RINGS}observe:
  addons:
    coredns: {{ kind: Deployment }}
    vpc-cni: {{ kind: DaemonSet, namespace: networking, name: aws-node, container: aws-node }}
  policies:
    restricted-prod: {{ apiVersion: policies.ringmaster.dev/v1, kind: PolicyBundle, name: restricted-prod, jsonPath: .status.version }}
    baseline: {{ apiVersion: v1, kind: ConfigMap, namespace: policy-system, name: baseline-version, jsonPath: .data.version }}
"
    );
    let f = Fixture::new(&[
        ("rings.yaml", Some(&rings)),
        ("releases/addons.yaml", Some(ADDONS_RELEASE)),
    ]);
    let loaded = rings::load(&f.config()).unwrap();
    assert!(loaded.warnings.is_empty(), "{}", f.report());
    let observe = &loaded.config.ring_set.observe;
    let coredns = &observe.addons["coredns"];
    assert_eq!(coredns.kind, rings::model::WorkloadKind::Deployment);
    assert_eq!(
        (coredns.namespace.as_str(), coredns.name.as_str()),
        ("kube-system", "coredns")
    );
    assert_eq!(coredns.container, None);
    let cni = &observe.addons["vpc-cni"];
    assert_eq!(cni.kind, rings::model::WorkloadKind::DaemonSet);
    assert_eq!(
        (
            cni.namespace.as_str(),
            cni.name.as_str(),
            cni.container.as_deref()
        ),
        ("networking", "aws-node", Some("aws-node"))
    );
    let bundle = &observe.policies["restricted-prod"];
    assert_eq!(bundle.api_version, "policies.ringmaster.dev/v1");
    assert_eq!(bundle.kind, "PolicyBundle");
    assert_eq!(bundle.namespace, None);
    assert_eq!(bundle.json_path, ".status.version");
    assert_eq!(
        observe.policies["baseline"].namespace.as_deref(),
        Some("policy-system")
    );
}

#[test]
fn observe_errors() {
    let rings = format!(
        "{RINGS}observe:
  addons:
    coredns: {{ kind: Deploymnet }}
    kube-proxy: {{ kind: DaemonSet, namespace: Kube_System, container: \"\" }}
    Bad_Name: {{ kind: Deployment }}
  policies:
    restricted-prod: {{ apiVersion: policies.ringmaster.dev, kind: policyBundle, name: restricted-prod, jsonPath: status.version }}
"
    );
    let r = case("observe_errors", &[("rings.yaml", Some(&rings))]);
    assert!(
        r.contains("observe.addons.coredns.kind `Deploymnet` must be one of Deployment, DaemonSet, StatefulSet")
            && r.contains("did you mean `Deployment`?"),
        "{r}"
    );
    assert!(
        r.contains("observe.addons.kube-proxy.namespace `Kube_System`"),
        "{r}"
    );
    assert!(r.contains("observe.addons.kube-proxy.container ``"), "{r}");
    assert!(
        r.contains(
            "observe.addons.Bad_Name has no `name` and `Bad_Name` is not a Kubernetes object name"
        ),
        "{r}"
    );
    assert!(
        r.contains("apiVersion `policies.ringmaster.dev` is not an API version"),
        "{r}"
    );
    assert!(
        r.contains("kind `policyBundle` is not a Kubernetes kind"),
        "{r}"
    );
    assert!(
        r.contains("jsonPath `status.version` must start with `.`"),
        "{r}"
    );

    // Unknown fields are refused like everywhere else (serde stops at the first one).
    let rings =
        format!("{RINGS}observe:\n  addons:\n    argocd: {{ kind: StatefulSet, image: argocd }}\n");
    let r = Fixture::new(&[("rings.yaml", Some(&rings))]).report();
    assert!(
        r.contains("rings.yaml:16:34: error: unknown field `image`, expected one of kind, namespace, name, container"),
        "{r}"
    );
}

#[test]
fn removed_apis_is_a_preflight_check() {
    let gates = "  removed-apis: { kube: { removedApis: { ignore: [\"flowcontrol.apiserver.k8s.io/v1beta3\"] } } }\n";
    let preflight = format!(
        "{}{gates}",
        RINGS.replace(
            "    soak: 1h\n    gates: [nodes-ready]\n",
            "    soak: 1h\n    gates: [nodes-ready]\n    preflight: [removed-apis]\n"
        )
    );
    let f = Fixture::new(&[("rings.yaml", Some(&preflight))]);
    let loaded = rings::load(&f.config()).unwrap();
    let gate = &loaded.config.ring_set.gates[&rings::GateName::new("removed-apis").unwrap()];
    let rings::model::GateCheck::Kube(k) = &gate.check else {
        panic!("a kube gate")
    };
    assert_eq!(
        k.removed_apis.as_ref().unwrap().ignore,
        ["flowcontrol.apiserver.k8s.io/v1beta3"]
    );

    let soak = format!(
        "{}{gates}",
        RINGS.replace(
            "gates: [nodes-ready]\n  - name",
            "gates: [nodes-ready, removed-apis]\n  - name"
        ),
    );
    let r = case("removed_apis_in_a_soak", &[("rings.yaml", Some(&soak))]);
    assert!(
        r.contains("ring `canary` uses gate `removed-apis` (kube.removedApis) during its soak")
            && r.contains("list it under the ring's `preflight:`"),
        "{r}"
    );
    let bad_ignore = format!(
        "{RINGS}{}",
        gates.replace("v1beta3\"", "v1beta3\", \"policy//x\"")
    );
    let r = case("removed_apis_ignore", &[("rings.yaml", Some(&bad_ignore))]);
    assert!(r.contains("removedApis.ignore entry `policy//x`"), "{r}");
}

#[test]
fn the_webhook_secret_comes_from_env_or_file_never_both() {
    let github = "forge:\n  github: { owner: acme, repo: gitops, tokenEnv: GITHUB_TOKEN";
    let load = |extra: &str| {
        let settings = format!("{SETTINGS}{github}{extra} }}\n");
        let fixture = Fixture::new(&[("ringmaster.yaml", Some(&settings))]);
        rings::load(&fixture.config()).map(|l| match l.config.settings.forge {
            rings::model::ForgeSettings::GitHub(g) => g.webhook_secret,
            other => panic!("{other:?}"),
        })
    };
    assert!(matches!(load(""), Ok(None)));
    assert!(matches!(
        load(", webhookSecretEnv: HOOK_SECRET"),
        Ok(Some(rings::model::SecretSource::Env(e))) if e == "HOOK_SECRET"
    ));
    assert!(matches!(
        load(", webhookSecretFile: hook.secret"),
        Ok(Some(rings::model::SecretSource::File(p))) if p.ends_with("hook.secret")
    ));
    let both = load(", webhookSecretEnv: A, webhookSecretFile: b").unwrap_err();
    let text = both.errors().map(|e| e.to_string()).collect::<String>();
    assert!(
        text.contains("webhookSecretEnv or webhookSecretFile, not both"),
        "{text}"
    );
}

#[test]
fn node_convergence_is_the_clusters_then_the_rings() {
    use rings::model::NodeConvergence;
    let rings = RINGS.replace(
        "  - name: prod\n    selector: { environment: prod }\n",
        "  - name: prod\n    selector: { environment: prod }\n    upgrade: { nodes: skew }\n",
    );
    let target = format!(
        "{}upgrade: {{ nodes: target }}\n",
        cluster("prod-2", "prod")
    );
    let f = Fixture::new(&[
        ("rings.yaml", Some(&rings)),
        ("gitops/clusters/prod-2/cluster.yaml", Some(&target)),
    ]);
    let loaded = rings::load(&f.config()).unwrap();
    assert!(loaded.warnings.is_empty(), "{}", f.report());
    let config = &loaded.config;
    let ring_nodes: Vec<_> = config.ring_set.rings.iter().map(|r| r.nodes).collect();
    assert_eq!(
        ring_nodes,
        [NodeConvergence::Target, NodeConvergence::Skew],
        "a ring without `upgrade:` waits for every node"
    );
    let nodes = |id: &str| {
        let c = config
            .fleet
            .clusters
            .iter()
            .find(|c| c.id.as_str() == id)
            .unwrap();
        (c.upgrade_nodes, c.nodes)
    };
    assert_eq!(nodes("stg-1"), (None, NodeConvergence::Target));
    assert_eq!(nodes("prod-1"), (None, NodeConvergence::Skew), "the ring's");
    assert_eq!(
        nodes("prod-2"),
        (Some(NodeConvergence::Target), NodeConvergence::Target),
        "the cluster's wins"
    );
}

#[test]
fn node_convergence_errors() {
    let rings = RINGS
        .replace(
            "    soak: 1h\n",
            "    soak: 1h\n    upgrade: { nodes: skw }\n",
        )
        .replace(
            "  - name: prod\n    selector: { environment: prod }\n",
            "  - name: prod\n    selector: { environment: prod }\n    upgrade:\n      node: skew\n",
        );
    let always = format!(
        "{}upgrade: {{ nodes: always }}\n",
        cluster("prod-2", "prod")
    );
    let r = case(
        "node_convergence",
        &[
            ("rings.yaml", Some(&rings)),
            ("gitops/clusters/prod-2/cluster.yaml", Some(&always)),
        ],
    );
    assert!(
        r.contains(
            "<dir>/rings.yaml:8:23: error: upgrade.nodes `skw` must be `target` or `skew` (did you mean `skew`?)"
        ),
        "{r}"
    );
    assert!(r.contains("<dir>/rings.yaml:13:7"), "{r}");
    assert!(r.contains("did you mean `nodes`?"), "{r}");
    assert!(
        r.contains("clusters/prod-2/cluster.yaml:8:19: error: upgrade.nodes `always` must be `target` or `skew`"),
        "{r}"
    );
}

/// Secrets: a `tokenFile` that is not there, or both `tokenEnv` and `tokenFile`, fail in
/// `validate` at the key, not at the daemon's first request (issue 16 item 12).
#[test]
fn secret_files_must_exist_and_come_alone() {
    let settings = format!(
        "{SETTINGS}api: {{ tokenFile: secrets/api-token }}\nforge:\n  github: {{ owner: acme, repo: gitops, tokenFile: gh.token, webhookSecretFile: hook.secret }}\n"
    );
    let r = case("secret_files", &[("ringmaster.yaml", Some(&settings))]);
    assert!(
        r.contains("api.tokenFile `secrets/api-token` does not exist"),
        "{r}"
    );
    assert!(
        r.contains("forge.github.tokenFile `gh.token` does not exist"),
        "{r}"
    );
    assert!(
        r.contains("webhookSecretFile `hook.secret` does not exist"),
        "{r}"
    );
    let present = Fixture::new(&[
        ("ringmaster.yaml", Some(&settings)),
        ("secrets/api-token", Some("t\n")),
        ("gh.token", Some("t\n")),
        ("hook.secret", Some("t\n")),
    ]);
    let loaded = rings::load(&present.config()).unwrap();
    assert!(rings::load::missing_secret_files(&loaded.config.settings).is_empty());

    let both = settings.replace("api: {", "api: { tokenEnv: API_TOKEN,");
    let r = case("secret_env_and_file", &[("ringmaster.yaml", Some(&both))]);
    assert!(
        r.contains("api: set tokenEnv or tokenFile, not both"),
        "{r}"
    );
}

/// The GitHub App's private key and the deploy key are secret files too: missing, `validate`
/// says so at their keys instead of `run` failing at its first GitHub or Git call.
#[test]
fn the_app_key_and_the_ssh_key_must_exist() {
    let settings = SETTINGS.replace(
        "gitops: { url: ./gitops, branch: main }",
        "gitops: { url: ./gitops, branch: main, auth: { sshKeyFile: keys/deploy } }",
    ) + "forge:\n  github: { owner: acme, repo: gitops, app: { appId: 1, privateKeyFile: keys/app.pem } }\n";
    let missing = Fixture::new(&[("ringmaster.yaml", Some(&settings))]);
    let loaded = rings::load(&missing.config()).unwrap();
    let text: Vec<String> = rings::load::missing_secret_files(&loaded.config.settings)
        .sorted()
        .into_iter()
        .map(|d| d.to_string())
        .collect();
    let text = text.join("\n");
    assert!(
        text.contains("gitops.auth.sshKeyFile `keys/deploy` does not exist"),
        "{text}"
    );
    assert!(
        text.contains("forge.github.app.privateKeyFile `keys/app.pem` does not exist"),
        "{text}"
    );
    assert!(text.contains("ringmaster.yaml:3:"), "positions: {text}");
    let present = Fixture::new(&[
        ("ringmaster.yaml", Some(&settings)),
        ("keys/deploy", Some("k\n")),
        ("keys/app.pem", Some("k\n")),
    ]);
    let loaded = rings::load(&present.config()).unwrap();
    assert!(rings::load::missing_secret_files(&loaded.config.settings).is_empty());
}

/// A window whose cron never matches (February 30th) and a soak of nothing are refused: the
/// first ring would wait forever, the second would pass on gates never sampled.
#[test]
fn a_window_that_never_opens_and_a_zero_soak() {
    let rings = RINGS
        .replace("0 9 * * MON-FRI", "0 9 30 2 *")
        .replace("    soak: 1h", "    soak: 0s");
    let r = case("never_and_zero", &[("rings.yaml", Some(&rings))]);
    assert!(
        r.contains("rings.yaml:6:21: error: window cron `0 9 30 2 *` never matches"),
        "{r}"
    );
    assert!(r.contains("soak `0s` must be longer than 0s"), "{r}");
    let leap = RINGS.replace("0 9 * * MON-FRI", "0 9 29 2 *");
    assert!(rings::load(&Fixture::new(&[("rings.yaml", Some(&leap))]).config()).is_ok());
}

/// A registry value that would move an edit rule's file out of the repository (`..`) is
/// reported by `validate` with the cluster and the rule, not first when the step is built.
#[test]
fn an_edit_path_escaping_the_repository_through_a_registry_value() {
    let rings = format!(
        "{RINGS}edits:\n  - addon: coredns\n    file: \"helm/{{labels.cell}}/{{clusterId}}.yaml\"\n    yamlPath: \".coredns\"\n"
    );
    let escaping = format!("{}labels: {{ cell: \"..\" }}\n", cluster("prod-2", "prod"));
    let good = |id: &str, env: &str| format!("{}labels: {{ cell: c1 }}\n", cluster(id, env));
    let (stg, prod) = (good("stg-1", "staging"), good("prod-1", "prod"));
    let r = case(
        "edit_path_escape",
        &[
            ("rings.yaml", Some(&rings)),
            ("gitops/clusters/stg-1/cluster.yaml", Some(&stg)),
            ("gitops/clusters/prod-1/cluster.yaml", Some(&prod)),
            ("gitops/clusters/prod-2/cluster.yaml", Some(&escaping)),
        ],
    );
    assert!(r.contains("rings.yaml:15:5: error: edit rule for"), "{r}");
    assert!(
        r.contains("cluster `prod-2`: `labels.cell` value `..`"),
        "{r}"
    );
    assert_eq!(r.lines().count(), 1, "{r}");
}
