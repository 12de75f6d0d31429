//! A fleet-registry entry as written: the fields ringmaster knows, typed, and every other field
//! kept as it is (the registry is the organisation's, not ringmaster's).
//!
//! Deserialised by hand rather than derived: a derived struct either denies unknown fields (and
//! refuses a registry as platform teams write it) or flattens them into a buffered map (which
//! doubles the parse cost of a 100,000-file registry). The visitor below sorts each key in one
//! pass: a known field, a near-typo of one (kept for an error with "did you mean"), or an extra
//! field.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{RawUpgrade, S};

/// The top-level registry fields ringmaster reads, as written in files.
pub const KNOWN_CLUSTER_FIELDS: [&str; 15] = [
    "clusterId",
    "provider",
    "service",
    "region",
    "environment",
    "ownerTeam",
    "criticality",
    "labels",
    "upgradeRing",
    "kubeContext",
    "kubernetesVersion",
    "addons",
    "controllers",
    "policies",
    "upgrade",
];

/// A fleet-registry entry (one file per cluster). The required fields are `Option` here so that
/// a missing one is reported by the loader with the rest of the file's problems (and not at all
/// when a near-typo of it is already reported).
#[derive(Debug, Default)]
pub struct RawCluster {
    /// `[a-z0-9-]{1,63}`.
    pub cluster_id: Option<S<String>>,
    /// `aws`, `azure`, `gcp`, `onprem` or `other`.
    pub provider: Option<S<String>>,
    /// `eks`, `aks`, `gke`, …
    pub service: Option<String>,
    /// Cloud region.
    pub region: Option<String>,
    /// `sandbox`, `dev`, `staging`, `prod`, …
    pub environment: Option<String>,
    /// Owning team.
    pub owner_team: Option<String>,
    /// `tier-1`, …
    pub criticality: Option<String>,
    /// Free labels.
    pub labels: BTreeMap<String, String>,
    /// Explicit ring.
    pub upgrade_ring: Option<S<String>>,
    /// Kubeconfig context. Default: the cluster id.
    pub kube_context: Option<String>,
    /// Control-plane version the cluster should run.
    pub kubernetes_version: Option<S<String>>,
    /// Add-on → version.
    pub addons: BTreeMap<String, S<String>>,
    /// Controller (argocd, cert-manager, karpenter, …) → version.
    pub controllers: BTreeMap<String, S<String>>,
    /// Policy bundle → version.
    pub policies: BTreeMap<String, S<String>>,
    /// Upgrade controls.
    pub upgrade: Option<S<RawUpgrade>>,
    /// Fields ringmaster does not know, in file order.
    pub extra: Vec<(String, ExtraRaw)>,
    /// Unknown fields so close to a known one that they are taken for a misspelling.
    pub typos: Vec<Typo>,
}

/// An unknown field taken for a misspelling of a known one.
#[derive(Debug)]
pub struct Typo {
    /// The key as written, with its position.
    pub key: S<String>,
    /// The known field it is closest to.
    pub suggestion: &'static str,
}

/// The value of a field ringmaster does not know.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraRaw {
    /// `~`, `null` or nothing.
    Null,
    /// A string, number, boolean or date, as text (`2026-08-15`, `3`, `true`).
    Scalar(String),
    /// A list or a map.
    Structured(serde_json::Value),
}

/// The known field `key` is a misspelling of, if any: the same name in another case or
/// separator (`ClusterId`, `cluster_id`), or at most two edits away (one for short names).
/// Deliberately tighter than the suggestions for values: an organisation's own field such as
/// `clusterName` or `purpose` must never be refused for resembling one of ringmaster's.
pub fn field_typo(key: &str) -> Option<&'static str> {
    let fold = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let k = fold(key);
    let limit = if k.len() <= 5 { 1 } else { 2 };
    KNOWN_CLUSTER_FIELDS
        .iter()
        .map(|known| (crate::diag::edit_distance(&k, &fold(known)), *known))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

impl<'de> Deserialize<'de> for RawCluster {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ClusterVisitor)
    }
}

struct ClusterVisitor;

fn set<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    field: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(field));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

fn set_map<'de, A: MapAccess<'de>, T: Deserialize<'de> + Default>(
    slot: &mut Option<T>,
    field: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(field));
    }
    // `addons:` with nothing under it is an empty map, as with the derived structs.
    *slot = Some(map.next_value::<Option<T>>()?.unwrap_or_default());
    Ok(())
}

impl<'de> Visitor<'de> for ClusterVisitor {
    type Value = RawCluster;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a registry entry (a map with clusterId, provider, kubernetesVersion, …)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCluster, A::Error> {
        let mut c = RawCluster::default();
        let (mut labels, mut addons, mut controllers, mut policies) = (None, None, None, None);
        let mut seen_extra: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<S<String>>()? {
            match key.value.as_str() {
                "clusterId" => set(&mut c.cluster_id, "clusterId", &mut map)?,
                "provider" => set(&mut c.provider, "provider", &mut map)?,
                "service" => set(&mut c.service, "service", &mut map)?,
                "region" => set(&mut c.region, "region", &mut map)?,
                "environment" => set(&mut c.environment, "environment", &mut map)?,
                "ownerTeam" => set(&mut c.owner_team, "ownerTeam", &mut map)?,
                "criticality" => set(&mut c.criticality, "criticality", &mut map)?,
                "labels" => set_map(&mut labels, "labels", &mut map)?,
                "upgradeRing" => set(&mut c.upgrade_ring, "upgradeRing", &mut map)?,
                "kubeContext" => set(&mut c.kube_context, "kubeContext", &mut map)?,
                "kubernetesVersion" => {
                    set(&mut c.kubernetes_version, "kubernetesVersion", &mut map)?;
                }
                "addons" => set_map(&mut addons, "addons", &mut map)?,
                "controllers" => set_map(&mut controllers, "controllers", &mut map)?,
                "policies" => set_map(&mut policies, "policies", &mut map)?,
                "upgrade" => set(&mut c.upgrade, "upgrade", &mut map)?,
                other => {
                    if let Some(suggestion) = field_typo(other) {
                        map.next_value::<de::IgnoredAny>()?;
                        c.typos.push(Typo { key, suggestion });
                        continue;
                    }
                    if seen_extra.iter().any(|k| k == other) {
                        return Err(de::Error::custom(format!("duplicate field `{other}`")));
                    }
                    seen_extra.push(other.to_owned());
                    let value = map.next_value::<ExtraRaw>()?;
                    c.extra.push((key.value, value));
                }
            }
        }
        c.labels = labels.unwrap_or_default();
        c.addons = addons.unwrap_or_default();
        c.controllers = controllers.unwrap_or_default();
        c.policies = policies.unwrap_or_default();
        Ok(c)
    }
}

impl<'de> Deserialize<'de> for ExtraRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ExtraVisitor)
    }
}

struct ExtraVisitor;

impl<'de> Visitor<'de> for ExtraVisitor {
    type Value = ExtraRaw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Scalar(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<ExtraRaw, E> {
        Ok(ExtraRaw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ExtraRaw, D::Error> {
        ExtraRaw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ExtraRaw, A::Error> {
        serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
            .map(ExtraRaw::Structured)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ExtraRaw, A::Error> {
        serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(ExtraRaw::Structured)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MATURE: &str = "\
clusterId: aws-use1-prod-01
provider: aws
purpose: shared platform services
networkMode: vpc-cni-prefix-delegation
upgradeChannel: stable
replicas: 3
nextUpgradeWindow: 2026-08-15
backup: { profile: gold, regions: [us-east-1, us-west-2] }
kubernetesVersion: \"1.32\"
controllers:
  cert-manager: \"1.16.2\"
";

    #[test]
    fn unknown_fields_are_kept_as_written() {
        let c: RawCluster = serde_saphyr::from_str(MATURE).unwrap();
        assert_eq!(c.cluster_id.unwrap().value, "aws-use1-prod-01");
        assert_eq!(c.controllers["cert-manager"].value, "1.16.2");
        let extra: BTreeMap<_, _> = c.extra.into_iter().collect();
        assert_eq!(extra["upgradeChannel"], ExtraRaw::Scalar("stable".into()));
        assert_eq!(extra["replicas"], ExtraRaw::Scalar("3".into()));
        assert_eq!(
            extra["nextUpgradeWindow"],
            ExtraRaw::Scalar("2026-08-15".into())
        );
        assert_eq!(
            extra["backup"],
            ExtraRaw::Structured(
                serde_json::json!({"profile": "gold", "regions": ["us-east-1", "us-west-2"]})
            )
        );
        assert!(c.typos.is_empty());
    }

    #[test]
    fn near_typos_are_caught_with_their_position() {
        let c: RawCluster = serde_saphyr::from_str(
            "clusterId: a\nprovider: aws\nkubernetesVersoin: \"1.32\"\naddon: {}\nupgradeRng: x\n",
        )
        .unwrap();
        let typos: Vec<(String, u64, &str)> = c
            .typos
            .iter()
            .map(|t| (t.key.value.clone(), t.key.referenced.line(), t.suggestion))
            .collect();
        assert_eq!(
            typos,
            [
                ("kubernetesVersoin".to_owned(), 3, "kubernetesVersion"),
                ("addon".to_owned(), 4, "addons"),
                ("upgradeRng".to_owned(), 5, "upgradeRing"),
            ]
        );
    }

    #[test]
    fn an_organisations_own_fields_are_not_typos() {
        for field in [
            "clusterName",
            "purpose",
            "entrypoint",
            "identityMode",
            "policyProfile",
            "upgradeChannel",
            "providerVersionPolicy",
            "riskStatus",
            "team",
            "account",
        ] {
            assert_eq!(field_typo(field), None, "{field}");
        }
        assert_eq!(field_typo("cluster_id"), Some("clusterId"));
        assert_eq!(field_typo("Environment"), Some("environment"));
        assert_eq!(field_typo("lables"), Some("labels"));
    }

    #[test]
    fn duplicate_fields_are_refused() {
        assert!(serde_saphyr::from_str::<RawCluster>("clusterId: a\nclusterId: b\n").is_err());
        assert!(serde_saphyr::from_str::<RawCluster>("x: 1\nx: 2\n").is_err());
    }
}
