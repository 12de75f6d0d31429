//! Identifiers, validated when they are made: an invalid one cannot exist.
//!
//! Cluster ids, ring names and release names end up in file paths, branch names
//! (`ringmaster/<rollout>/<ring>/<n>`) and labels, so their alphabet is small on purpose.

use std::fmt;

use serde::Serialize;

fn check_name(kind: &str, text: &str, extra: &[char], max: usize) -> Result<(), String> {
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(&c);
    if text.is_empty() {
        return Err(format!("{kind} is empty"));
    }
    if text.len() > max {
        return Err(format!(
            "{kind} `{text}` is {} characters long; at most {max} are allowed",
            text.len()
        ));
    }
    if let Some(bad) = text.chars().find(|c| !allowed(*c)) {
        let alphabet = if extra.is_empty() {
            "lowercase letters, digits and `-`".to_owned()
        } else {
            let extra: String = extra.iter().map(|c| format!(" `{c}`")).collect();
            format!("lowercase letters, digits, `-` and{extra}")
        };
        return Err(format!(
            "{kind} `{text}` contains {bad:?}; only {alphabet} are allowed"
        ));
    }
    if text.starts_with(['.', '-']) || text.contains("..") {
        return Err(format!(
            "{kind} `{text}` must not start with `-` or `.` nor contain `..`"
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $extra:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validate and wrap.
            pub fn new(text: &str) -> Result<Self, String> {
                check_name($kind, text, $extra, $max).map(|()| Self(text.to_owned()))
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A cluster's id: `[a-z0-9-]{1,63}` (it is used in file paths, so nothing else is accepted).
    ClusterId, "cluster id", &[], 63
);
name_type!(
    /// A ring's name: `[a-z0-9-]{1,63}` (used in branch names and labels).
    RingName, "ring name", &[], 63
);
name_type!(
    /// A release's name: `[a-z0-9.-]{1,100}` (used in branch names, e.g. `k8s-1.34`).
    ReleaseName, "release name", &['.', '_'], 100
);
name_type!(
    /// A gate's name in `rings.yaml`.
    GateName, "gate name", &['_'], 63
);

/// What a release promotes on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The Kubernetes control-plane minor (`kubernetesVersion`).
    Kubernetes,
    /// An add-on (`addons.<name>`).
    Addon(String),
    /// A cluster controller such as argocd, cert-manager or karpenter (`controllers.<name>`).
    Controller(String),
    /// A policy bundle (`policies.<name>`).
    Policy(String),
}

impl Component {
    /// Parse the text [`Component`]'s `Display` writes (`kubernetes`, `addon/coredns`,
    /// `controller/cert-manager`, `policy/restricted-prod`).
    pub fn parse(text: &str) -> Option<Component> {
        if text == "kubernetes" {
            return Some(Component::Kubernetes);
        }
        let (kind, name) = text.split_once('/')?;
        if name.is_empty() {
            return None;
        }
        Some(match kind {
            "addon" => Component::Addon(name.to_owned()),
            "controller" => Component::Controller(name.to_owned()),
            "policy" => Component::Policy(name.to_owned()),
            _ => return None,
        })
    }

    /// The registry map the component lives in (`addons`, `controllers`, `policies`), `None`
    /// for Kubernetes.
    pub fn registry_map(&self) -> Option<&'static str> {
        match self {
            Component::Kubernetes => None,
            Component::Addon(_) => Some("addons"),
            Component::Controller(_) => Some("controllers"),
            Component::Policy(_) => Some("policies"),
        }
    }

    /// The item's name (`coredns`); `None` for Kubernetes.
    pub fn item(&self) -> Option<&str> {
        match self {
            Component::Kubernetes => None,
            Component::Addon(n) | Component::Controller(n) | Component::Policy(n) => Some(n),
        }
    }

    /// Validate an add-on or policy bundle name (used as a map key and in file path templates).
    pub fn check_item_name(kind: &str, name: &str) -> Result<(), String> {
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{kind} name `{name}` may only contain letters, digits, `-`, `_` and `.`"
            ))
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Kubernetes => f.write_str("kubernetes"),
            Component::Addon(name) => write!(f, "addon/{name}"),
            Component::Controller(name) => write!(f, "controller/{name}"),
            Component::Policy(name) => write!(f, "policy/{name}"),
        }
    }
}

impl Serialize for Component {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_cannot_escape_paths() {
        assert!(ClusterId::new("aws-use1-prod-platform-01").is_ok());
        for bad in [
            "",
            "../etc",
            "a/b",
            "Prod",
            "a b",
            "a.b",
            "-x",
            &"a".repeat(64),
            "ä",
        ] {
            assert!(ClusterId::new(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(ClusterId::new(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn release_names_allow_dots_but_not_traversal() {
        assert!(ReleaseName::new("k8s-1.34").is_ok());
        assert!(ReleaseName::new("restricted-prod-2.4.0").is_ok());
        assert!(ReleaseName::new("a..b").is_err());
        assert!(ReleaseName::new(".hidden").is_err());
        assert!(ReleaseName::new("a/b").is_err());
    }

    #[test]
    fn components_display_as_in_the_plan() {
        assert_eq!(Component::Kubernetes.to_string(), "kubernetes");
        assert_eq!(
            Component::Addon("coredns".into()).to_string(),
            "addon/coredns"
        );
        assert_eq!(
            Component::Policy("restricted-prod".into()).to_string(),
            "policy/restricted-prod"
        );
        for c in [
            Component::Kubernetes,
            Component::Addon("coredns".into()),
            Component::Controller("cert-manager".into()),
            Component::Policy("restricted-prod".into()),
        ] {
            assert_eq!(Component::parse(&c.to_string()), Some(c));
        }
        assert_eq!(Component::parse("controller/"), None);
        assert_eq!(Component::parse("chart/x"), None);
    }
}
