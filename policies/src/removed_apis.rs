//! The Kubernetes API versions each minor stopped serving, and the pure half of the
//! `kube.removedApis` preflight (DESIGN §6.1): reading `apiserver_requested_deprecated_apis`
//! from the API server's `/metrics`, and telling whether a stored object was written through a
//! removed API version.
//!
//! The table follows the upstream "Deprecated API Migration Guide"
//! (<https://kubernetes.io/docs/reference/using-api/deprecation-guide/>): removals in 1.16,
//! 1.22, 1.25, 1.26, 1.27, 1.29 and 1.32. The guide lists no removal after 1.32; the entries
//! for 1.33 to [`LAST_MINOR`] are empty on that basis and must be filled in if a later guide
//! announces one (the `/metrics` half of the check still catches anything the API server itself
//! marks with a `removed_release`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The first minor of the table (the first mass removal, 1.16).
pub const FIRST_MINOR: u64 = 16;
/// The last minor of the table.
pub const LAST_MINOR: u64 = 36;
/// The last minor whose removals were confirmed against the upstream guide.
pub const LAST_CONFIRMED_MINOR: u64 = 32;
/// The annotation `kubectl apply` (client-side) leaves with the manifest it applied.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The API server's metric of requests to deprecated API versions.
pub const REQUESTED_DEPRECATED_METRIC: &str = "apiserver_requested_deprecated_apis";

/// One resource of one API version that a Kubernetes minor stopped serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedApi {
    /// API group (`""` is the core group).
    pub group: &'static str,
    /// Version within the group (`v1beta1`).
    pub version: &'static str,
    /// Resource, plural and lowercase as in URLs (`poddisruptionbudgets`).
    pub resource: &'static str,
    /// Kind (`PodDisruptionBudget`).
    pub kind: &'static str,
    /// The minor (of Kubernetes 1.x) that no longer serves it.
    pub removed_in: u64,
}

impl RemovedApi {
    /// `group/version`, or the bare version for the core group.
    pub fn api_version(&self) -> String {
        api_version(self.group, self.version)
    }

    /// `1.25`.
    pub fn removed_in_text(&self) -> String {
        format!("1.{}", self.removed_in)
    }
}

/// `group/version`, or the bare version for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// The removals of one minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removals {
    /// The minor (of Kubernetes 1.x).
    pub minor: u64,
    /// What it stopped serving (empty when nothing).
    pub apis: &'static [RemovedApi],
}

const fn api(
    removed_in: u64,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
) -> RemovedApi {
    RemovedApi {
        group,
        version,
        resource,
        kind,
        removed_in,
    }
}

const V1_16: &[RemovedApi] = &[
    api(
        16,
        "extensions",
        "v1beta1",
        "networkpolicies",
        "NetworkPolicy",
    ),
    api(
        16,
        "extensions",
        "v1beta1",
        "podsecuritypolicies",
        "PodSecurityPolicy",
    ),
    api(16, "extensions", "v1beta1", "daemonsets", "DaemonSet"),
    api(16, "apps", "v1beta2", "daemonsets", "DaemonSet"),
    api(16, "extensions", "v1beta1", "deployments", "Deployment"),
    api(16, "apps", "v1beta1", "deployments", "Deployment"),
    api(16, "apps", "v1beta2", "deployments", "Deployment"),
    api(16, "apps", "v1beta1", "statefulsets", "StatefulSet"),
    api(16, "apps", "v1beta2", "statefulsets", "StatefulSet"),
    api(16, "extensions", "v1beta1", "replicasets", "ReplicaSet"),
    api(16, "apps", "v1beta1", "replicasets", "ReplicaSet"),
    api(16, "apps", "v1beta2", "replicasets", "ReplicaSet"),
];

const V1_22: &[RemovedApi] = &[
    api(
        22,
        "admissionregistration.k8s.io",
        "v1beta1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
    ),
    api(
        22,
        "admissionregistration.k8s.io",
        "v1beta1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
    ),
    api(
        22,
        "apiextensions.k8s.io",
        "v1beta1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
    ),
    api(
        22,
        "apiregistration.k8s.io",
        "v1beta1",
        "apiservices",
        "APIService",
    ),
    api(
        22,
        "authentication.k8s.io",
        "v1beta1",
        "tokenreviews",
        "TokenReview",
    ),
    api(
        22,
        "authorization.k8s.io",
        "v1beta1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
    ),
    api(
        22,
        "authorization.k8s.io",
        "v1beta1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    api(
        22,
        "authorization.k8s.io",
        "v1beta1",
        "subjectaccessreviews",
        "SubjectAccessReview",
    ),
    api(
        22,
        "certificates.k8s.io",
        "v1beta1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
    ),
    api(22, "coordination.k8s.io", "v1beta1", "leases", "Lease"),
    api(22, "extensions", "v1beta1", "ingresses", "Ingress"),
    api(22, "networking.k8s.io", "v1beta1", "ingresses", "Ingress"),
    api(
        22,
        "networking.k8s.io",
        "v1beta1",
        "ingressclasses",
        "IngressClass",
    ),
    api(
        22,
        "rbac.authorization.k8s.io",
        "v1beta1",
        "clusterroles",
        "ClusterRole",
    ),
    api(
        22,
        "rbac.authorization.k8s.io",
        "v1beta1",
        "clusterrolebindings",
        "ClusterRoleBinding",
    ),
    api(22, "rbac.authorization.k8s.io", "v1beta1", "roles", "Role"),
    api(
        22,
        "rbac.authorization.k8s.io",
        "v1beta1",
        "rolebindings",
        "RoleBinding",
    ),
    api(
        22,
        "scheduling.k8s.io",
        "v1beta1",
        "priorityclasses",
        "PriorityClass",
    ),
    api(22, "storage.k8s.io", "v1beta1", "csidrivers", "CSIDriver"),
    api(22, "storage.k8s.io", "v1beta1", "csinodes", "CSINode"),
    api(
        22,
        "storage.k8s.io",
        "v1beta1",
        "storageclasses",
        "StorageClass",
    ),
    api(
        22,
        "storage.k8s.io",
        "v1beta1",
        "volumeattachments",
        "VolumeAttachment",
    ),
];

const V1_25: &[RemovedApi] = &[
    api(25, "batch", "v1beta1", "cronjobs", "CronJob"),
    api(
        25,
        "discovery.k8s.io",
        "v1beta1",
        "endpointslices",
        "EndpointSlice",
    ),
    api(25, "events.k8s.io", "v1beta1", "events", "Event"),
    api(
        25,
        "autoscaling",
        "v2beta1",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
    ),
    api(
        25,
        "policy",
        "v1beta1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
    ),
    api(
        25,
        "policy",
        "v1beta1",
        "podsecuritypolicies",
        "PodSecurityPolicy",
    ),
    api(
        25,
        "node.k8s.io",
        "v1beta1",
        "runtimeclasses",
        "RuntimeClass",
    ),
];

const V1_26: &[RemovedApi] = &[
    api(
        26,
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        "flowschemas",
        "FlowSchema",
    ),
    api(
        26,
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        "prioritylevelconfigurations",
        "PriorityLevelConfiguration",
    ),
    api(
        26,
        "autoscaling",
        "v2beta2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
    ),
];

const V1_27: &[RemovedApi] = &[api(
    27,
    "storage.k8s.io",
    "v1beta1",
    "csistoragecapacities",
    "CSIStorageCapacity",
)];

const V1_29: &[RemovedApi] = &[
    api(
        29,
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        "flowschemas",
        "FlowSchema",
    ),
    api(
        29,
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        "prioritylevelconfigurations",
        "PriorityLevelConfiguration",
    ),
];

const V1_32: &[RemovedApi] = &[
    api(
        32,
        "flowcontrol.apiserver.k8s.io",
        "v1beta3",
        "flowschemas",
        "FlowSchema",
    ),
    api(
        32,
        "flowcontrol.apiserver.k8s.io",
        "v1beta3",
        "prioritylevelconfigurations",
        "PriorityLevelConfiguration",
    ),
];

const NONE: &[RemovedApi] = &[];

/// What each minor from [`FIRST_MINOR`] to [`LAST_MINOR`] stopped serving, in order.
pub const REMOVALS: [Removals; (LAST_MINOR - FIRST_MINOR + 1) as usize] = [
    Removals {
        minor: 16,
        apis: V1_16,
    },
    Removals {
        minor: 17,
        apis: NONE,
    },
    Removals {
        minor: 18,
        apis: NONE,
    },
    Removals {
        minor: 19,
        apis: NONE,
    },
    Removals {
        minor: 20,
        apis: NONE,
    },
    Removals {
        minor: 21,
        apis: NONE,
    },
    Removals {
        minor: 22,
        apis: V1_22,
    },
    Removals {
        minor: 23,
        apis: NONE,
    },
    Removals {
        minor: 24,
        apis: NONE,
    },
    Removals {
        minor: 25,
        apis: V1_25,
    },
    Removals {
        minor: 26,
        apis: V1_26,
    },
    Removals {
        minor: 27,
        apis: V1_27,
    },
    Removals {
        minor: 28,
        apis: NONE,
    },
    Removals {
        minor: 29,
        apis: V1_29,
    },
    Removals {
        minor: 30,
        apis: NONE,
    },
    Removals {
        minor: 31,
        apis: NONE,
    },
    Removals {
        minor: 32,
        apis: V1_32,
    },
    Removals {
        minor: 33,
        apis: NONE,
    },
    Removals {
        minor: 34,
        apis: NONE,
    },
    Removals {
        minor: 35,
        apis: NONE,
    },
    Removals {
        minor: 36,
        apis: NONE,
    },
];

/// Everything removed in Kubernetes 1.`target_minor` or earlier.
pub fn removed_by(target_minor: u64) -> impl Iterator<Item = &'static RemovedApi> {
    REMOVALS
        .iter()
        .filter(move |r| r.minor <= target_minor)
        .flat_map(|r| r.apis.iter())
}

/// One series of `apiserver_requested_deprecated_apis`: a deprecated API version that received
/// requests since the API server started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedDeprecatedApi {
    /// API group (`""` is the core group).
    pub group: String,
    /// Version.
    pub version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`""` for the resource itself).
    pub subresource: String,
    /// `removed_release` as written (`1.25`; empty when no removal is planned).
    pub removed_release: String,
}

impl RequestedDeprecatedApi {
    /// The minor of `removed_release` (`1.25` → 25), when it names a 1.x release.
    pub fn removed_minor(&self) -> Option<u64> {
        let (major, minor) = self.removed_release.trim().split_once('.')?;
        (major == "1").then_some(())?;
        minor.parse().ok()
    }
}

/// The series of `apiserver_requested_deprecated_apis` in Prometheus text format whose value is
/// above zero (the API server sets 1 for every deprecated API version requested since it
/// started). Other metrics, comments and malformed lines are skipped.
pub fn parse_requested_deprecated_apis(metrics: &str) -> Vec<RequestedDeprecatedApi> {
    let mut out = Vec::new();
    for line in metrics.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(REQUESTED_DEPRECATED_METRIC) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, after)) = parse_labels(rest) else {
            continue;
        };
        let value = after
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        if !value.is_some_and(|v| v > 0.0) {
            continue;
        }
        let label = |name: &str| {
            labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        out.push(RequestedDeprecatedApi {
            group: label("group"),
            version: label("version"),
            resource: label("resource"),
            subresource: label("subresource"),
            removed_release: label("removed_release"),
        });
    }
    out
}

/// Parse `a="x",b="y\"z"} rest` (after the opening brace): the labels and what follows the
/// closing brace. `None` when malformed.
fn parse_labels(text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((name, value));
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// Who wrote an object through `api_version` (`policy/v1beta1`), if anyone did: a
/// `managedFields` entry recorded for that version, or a `kubectl apply` manifest of that
/// version.
///
/// Every version of a resource serves the same stored objects, so listing through a removed
/// version returns all of them; what tells that something still *uses* the removed version is
/// how an object was written. An object written only through current versions is not a hit.
pub fn written_through(meta: &ObjectMeta, api_version: &str) -> Option<String> {
    let managers: Vec<&str> = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.api_version.as_deref() == Some(api_version))
        .map(|m| m.manager.as_deref().unwrap_or("an unnamed manager"))
        .collect();
    if !managers.is_empty() {
        let mut managers = managers;
        managers.sort_unstable();
        managers.dedup();
        return Some(format!("written by {}", managers.join(", ")));
    }
    let applied = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))?;
    let manifest: serde_json::Value = serde_json::from_str(applied).ok()?;
    (manifest
        .get("apiVersion")
        .and_then(serde_json::Value::as_str)
        == Some(api_version))
    .then(|| "applied by kubectl with that apiVersion".to_owned())
}

/// Whether `key` (`group/version/resource[/namespace]/name`) is accepted by an `ignore` entry:
/// an entry matches when its `/`-separated segments are the first segments of the key.
pub fn ignored(ignore: &[String], key: &str) -> bool {
    let key: Vec<&str> = key.split('/').collect();
    ignore.iter().any(|entry| {
        let entry: Vec<&str> = entry.split('/').collect();
        entry.len() <= key.len() && entry.iter().zip(&key).all(|(a, b)| a == b)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
