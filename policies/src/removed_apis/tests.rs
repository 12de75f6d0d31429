use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

use super::*;

fn has(target: u64, api_version: &str, kind: &str) -> bool {
    removed_by(target).any(|a| a.api_version() == api_version && a.kind == kind)
}

#[test]
fn the_table_covers_every_minor_in_order() {
    let minors: Vec<u64> = REMOVALS.iter().map(|r| r.minor).collect();
    assert_eq!(minors, (FIRST_MINOR..=LAST_MINOR).collect::<Vec<_>>());
    let with_removals: Vec<u64> = REMOVALS
        .iter()
        .filter(|r| !r.apis.is_empty())
        .map(|r| r.minor)
        .collect();
    assert_eq!(with_removals, [16, 22, 25, 26, 27, 29, 32]);
    for r in &REMOVALS {
        for a in r.apis {
            assert_eq!(a.removed_in, r.minor, "{a:?}");
            assert!(!a.group.is_empty() && a.version.starts_with('v'), "{a:?}");
            assert_eq!(a.resource, a.resource.to_lowercase(), "{a:?}");
        }
    }
}

#[test]
fn removed_by_includes_the_target_and_everything_before() {
    assert!(has(22, "extensions/v1beta1", "Ingress"));
    assert!(has(22, "networking.k8s.io/v1beta1", "Ingress"));
    assert!(
        has(25, "extensions/v1beta1", "Ingress"),
        "earlier removals stay"
    );
    assert!(has(25, "policy/v1beta1", "PodSecurityPolicy"));
    assert!(has(25, "policy/v1beta1", "PodDisruptionBudget"));
    assert!(has(25, "batch/v1beta1", "CronJob"));
    assert!(has(26, "autoscaling/v2beta2", "HorizontalPodAutoscaler"));
    assert!(has(27, "storage.k8s.io/v1beta1", "CSIStorageCapacity"));
    assert!(has(
        29,
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "FlowSchema"
    ));
    assert!(!has(
        28,
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "FlowSchema"
    ));
    assert!(has(
        32,
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "PriorityLevelConfiguration"
    ));
    assert!(!has(
        31,
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "FlowSchema"
    ));
    assert!(has(16, "apps/v1beta2", "Deployment"));
    assert!(!has(16, "policy/v1beta1", "PodSecurityPolicy"));

    // Nothing of 1.22 counts for a step to 1.21.
    assert!(removed_by(21).all(|a| a.removed_in == 16));
    assert!(!has(21, "extensions/v1beta1", "Ingress"));
    assert_eq!(removed_by(15).count(), 0);
    assert_eq!(
        removed_by(LAST_MINOR).count(),
        removed_by(LAST_CONFIRMED_MINOR).count()
    );
}

const METRICS: &str = r#"# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.
# TYPE apiserver_requested_deprecated_apis gauge
apiserver_requested_deprecated_apis{group="policy",removed_release="1.25",resource="podsecuritypolicies",subresource="",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="flowcontrol.apiserver.k8s.io",removed_release="1.32",resource="flowschemas",subresource="status",version="v1beta3"} 1
apiserver_requested_deprecated_apis{group="",removed_release="",resource="componentstatuses",subresource="",version="v1"} 1
apiserver_requested_deprecated_apis{group="batch",removed_release="1.25",resource="cronjobs",subresource="",version="v1beta1"} 0
apiserver_requested_deprecated_apis_other{group="x",removed_release="1.1",resource="y",subresource="",version="v1"} 1
apiserver_request_total{code="200",resource="pods",verb="LIST",version="v1"} 12
apiserver_requested_deprecated_apis{group="we\"ird",removed_release="1.29" , resource="a\\b",subresource="",version="v1beta2"} 1 1700000000000
apiserver_requested_deprecated_apis{group="broken"
"#;

#[test]
fn reads_requested_deprecated_apis_from_metrics() {
    let found = parse_requested_deprecated_apis(METRICS);
    let short: Vec<(&str, &str, &str, &str, Option<u64>)> = found
        .iter()
        .map(|a| {
            (
                a.group.as_str(),
                a.version.as_str(),
                a.resource.as_str(),
                a.subresource.as_str(),
                a.removed_minor(),
            )
        })
        .collect();
    assert_eq!(
        short,
        [
            ("policy", "v1beta1", "podsecuritypolicies", "", Some(25)),
            (
                "flowcontrol.apiserver.k8s.io",
                "v1beta3",
                "flowschemas",
                "status",
                Some(32)
            ),
            ("", "v1", "componentstatuses", "", None),
            ("we\"ird", "v1beta2", "a\\b", "", Some(29)),
        ]
    );
    assert!(parse_requested_deprecated_apis("").is_empty());
    assert!(parse_requested_deprecated_apis("# nothing here\n").is_empty());
}

fn meta(managers: &[(&str, &str)], applied: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some("legacy-pdb".into()),
        namespace: Some("default".into()),
        managed_fields: Some(
            managers
                .iter()
                .map(|(m, v)| ManagedFieldsEntry {
                    manager: Some((*m).into()),
                    api_version: Some((*v).into()),
                    operation: Some("Update".into()),
                    ..ManagedFieldsEntry::default()
                })
                .collect(),
        ),
        annotations: applied.map(|a| [(LAST_APPLIED_ANNOTATION.to_owned(), a.to_owned())].into()),
        ..ObjectMeta::default()
    }
}

#[test]
fn an_object_is_a_hit_only_when_written_through_the_removed_version() {
    let current = meta(&[("kube-controller-manager", "policy/v1")], None);
    assert_eq!(written_through(&current, "policy/v1beta1"), None);
    let old = meta(
        &[
            ("helm", "policy/v1beta1"),
            ("kube-controller-manager", "policy/v1"),
        ],
        None,
    );
    assert_eq!(
        written_through(&old, "policy/v1beta1").as_deref(),
        Some("written by helm")
    );
    let applied = meta(
        &[],
        Some(r#"{"apiVersion":"policy/v1beta1","kind":"PodDisruptionBudget"}"#),
    );
    assert_eq!(
        written_through(&applied, "policy/v1beta1").as_deref(),
        Some("applied by kubectl with that apiVersion")
    );
    assert_eq!(written_through(&applied, "policy/v1"), None);
    let garbage = meta(&[], Some("not json"));
    assert_eq!(written_through(&garbage, "policy/v1beta1"), None);
}

#[test]
fn ignore_entries_match_whole_leading_segments() {
    let ignore = vec![
        "flowcontrol.apiserver.k8s.io/v1beta3".to_owned(),
        "policy/v1beta1/poddisruptionbudgets/kube-system".to_owned(),
    ];
    assert!(ignored(
        &ignore,
        "flowcontrol.apiserver.k8s.io/v1beta3/flowschemas/exempt"
    ));
    assert!(ignored(
        &ignore,
        "policy/v1beta1/poddisruptionbudgets/kube-system/coredns"
    ));
    assert!(!ignored(
        &ignore,
        "policy/v1beta1/poddisruptionbudgets/default/web"
    ));
    assert!(!ignored(
        &ignore,
        "flowcontrol.apiserver.k8s.io/v1beta33/flowschemas/x"
    ));
    assert!(
        !ignored(&ignore, "policy/v1beta1"),
        "an entry longer than the key"
    );
    assert!(!ignored(
        &[],
        "policy/v1beta1/poddisruptionbudgets/default/web"
    ));
}
