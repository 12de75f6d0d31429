//! What the fake serves: the built-in kinds (typed `k8s_openapi` objects) and the kinds
//! registered at run time (custom resources, old API versions), as one table that discovery
//! and routing read.

/// A kind served from JSON objects: a CRD-backed custom resource, or an old version of a
/// built-in API (`extensions/v1beta1` Ingress, `policy/v1beta1` PodSecurityPolicy, ...) that a
/// removed-API preflight looks for.
///
/// ```
/// use integration::kube::ResourceKind;
/// let bundles = ResourceKind::cluster_scoped("policies.ringmaster.dev", "v1", "PolicyBundle", "policybundles");
/// let cronjobs = ResourceKind::namespaced("batch", "v1beta1", "CronJob", "cronjobs").removed_in("1.25");
/// assert_eq!(cronjobs.api_version(), "batch/v1beta1");
/// # let _ = bundles;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKind {
    /// API group (`policies.ringmaster.dev`; `""` is the core group).
    pub group: String,
    /// Version (`v1`, `v1beta1`).
    pub version: String,
    /// Kind (`PolicyBundle`).
    pub kind: String,
    /// Plural resource name used in URLs (`policybundles`).
    pub plural: String,
    /// Namespaced (`true`) or cluster-scoped.
    pub namespaced: bool,
    /// The Kubernetes release that removes this API version (`"1.25"`), for deprecated APIs.
    /// A request for such a kind is recorded in `apiserver_requested_deprecated_apis` on
    /// `/metrics`, as the real API server does.
    pub removed_release: Option<String>,
    /// Short names (`kubectl get pb`).
    pub short_names: Vec<String>,
    /// Extra columns of `kubectl get` (a CRD's `additionalPrinterColumns`): header and a
    /// dotted path into the object (`("Version", ".status.version")`).
    pub columns: Vec<(String, String)>,
}

impl ResourceKind {
    /// A namespaced kind.
    pub fn namespaced(group: &str, version: &str, kind: &str, plural: &str) -> ResourceKind {
        ResourceKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced: true,
            removed_release: None,
            short_names: Vec::new(),
            columns: Vec::new(),
        }
    }

    /// A cluster-scoped kind.
    pub fn cluster_scoped(group: &str, version: &str, kind: &str, plural: &str) -> ResourceKind {
        ResourceKind {
            namespaced: false,
            ..ResourceKind::namespaced(group, version, kind, plural)
        }
    }

    /// Marks the kind's API version as deprecated and removed in `release` (`"1.25"`).
    pub fn removed_in(mut self, release: &str) -> ResourceKind {
        self.removed_release = Some(release.to_owned());
        self
    }

    /// Adds short names.
    pub fn with_short_names(mut self, names: &[&str]) -> ResourceKind {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Adds a `kubectl get` column: a header and a dotted path (`.status.version`).
    pub fn with_column(mut self, header: &str, path: &str) -> ResourceKind {
        self.columns.push((header.to_owned(), path.to_owned()));
        self
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One served resource, as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Served {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub deprecated: bool,
}

/// A built-in kind, served from the typed `k8s_openapi` objects.
#[derive(Debug)]
struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    /// In the `all` category (`kubectl get all`).
    in_all: bool,
}

const fn builtin(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    in_all: bool,
) -> Builtin {
    Builtin {
        group,
        version: "v1",
        kind,
        plural,
        namespaced,
        short_names,
        in_all,
    }
}

/// The built-in kinds, in discovery order.
const BUILTIN: [Builtin; 6] = [
    builtin("", "Namespace", "namespaces", false, &["ns"], false),
    builtin("", "Node", "nodes", false, &["no"], false),
    builtin("", "Pod", "pods", true, &["po"], true),
    builtin("apps", "DaemonSet", "daemonsets", true, &["ds"], true),
    builtin("apps", "Deployment", "deployments", true, &["deploy"], true),
    builtin("apps", "StatefulSet", "statefulsets", true, &["sts"], true),
];

/// Every served resource: the built-in ones, then the registered kinds in registration order.
pub(super) fn served(registered: &[ResourceKind]) -> Vec<Served> {
    let builtin = BUILTIN.iter().map(|b| Served {
        group: b.group.to_owned(),
        version: b.version.to_owned(),
        kind: b.kind.to_owned(),
        plural: b.plural.to_owned(),
        namespaced: b.namespaced,
        short_names: b.short_names.iter().map(|s| (*s).to_owned()).collect(),
        categories: if b.in_all {
            vec!["all".to_owned()]
        } else {
            Vec::new()
        },
        deprecated: false,
    });
    let custom = registered.iter().map(|k| Served {
        group: k.group.clone(),
        version: k.version.clone(),
        kind: k.kind.clone(),
        plural: k.plural.clone(),
        namespaced: k.namespaced,
        short_names: k.short_names.clone(),
        categories: Vec::new(),
        deprecated: k.removed_release.is_some(),
    });
    builtin.chain(custom).collect()
}

/// One API group with its versions, the preferred one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Group {
    pub name: String,
    /// `(version, resources)`, preferred first: the first version served by a kind that is not
    /// deprecated, otherwise the first one.
    pub versions: Vec<(String, Vec<Served>)>,
}

/// The served resources grouped by API group (core first, then in order of appearance).
pub(super) fn groups(served: &[Served]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for s in served {
        let group = match groups.iter_mut().position(|g| g.name == s.group) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Group {
                    name: s.group.clone(),
                    versions: Vec::new(),
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        match group.versions.iter_mut().find(|(v, _)| *v == s.version) {
            Some((_, resources)) => resources.push(s.clone()),
            None => group.versions.push((s.version.clone(), vec![s.clone()])),
        }
    }
    for g in &mut groups {
        let current = g
            .versions
            .iter()
            .position(|(_, rs)| rs.iter().any(|r| !r.deprecated))
            .unwrap_or(0);
        if current > 0 {
            let preferred = g.versions.remove(current);
            g.versions.insert(0, preferred);
        }
    }
    groups
}
