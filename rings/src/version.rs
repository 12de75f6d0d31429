//! Versions as they are written in registries and reported by clusters.
//!
//! Real versions carry suffixes (`v1.34.2-eks-1234`, `1.19.0-eksbuild.1`) and Kubernetes minors
//! are often written without a patch (`1.33`). A [`Version`] keeps the text exactly as written
//! (so edits and PRs show what the user wrote) and compares on its semver core only.

use std::cmp::Ordering;
use std::fmt;

/// A version compared on its `major.minor.patch` core, displayed as written.
#[derive(Debug, Clone)]
pub struct Version {
    raw: String,
    core: semver::Version,
    has_patch: bool,
}

impl Version {
    /// Parse a version: an optional `v`, `MAJOR.MINOR[.PATCH]`, then any suffix starting with
    /// `-`, `+` or `_` (`-eksbuild.1`, `-eks-1234`, `+build`).
    pub fn parse(text: &str) -> Result<Version, String> {
        let raw = text.trim();
        if raw.is_empty() {
            return Err("empty version".to_owned());
        }
        let body = raw
            .strip_prefix('v')
            .or_else(|| raw.strip_prefix('V'))
            .unwrap_or(raw);
        let end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (numbers, suffix) = body.split_at(end);
        if !suffix.is_empty() && !suffix.starts_with(['-', '+', '_']) {
            return Err(format!(
                "`{raw}` is not a version: expected MAJOR.MINOR[.PATCH] with an optional suffix such as `-eksbuild.1`"
            ));
        }
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "`{raw}` is not a version: expected MAJOR.MINOR[.PATCH] (for example 1.33 or 1.19.0-eksbuild.1)"
            ));
        }
        let mut nums = [0u64; 3];
        for (slot, part) in nums.iter_mut().zip(&parts) {
            *slot = part
                .parse()
                .map_err(|_| format!("`{raw}` is not a version: `{part}` is too large"))?;
        }
        Ok(Version {
            raw: raw.to_owned(),
            core: semver::Version::new(nums[0], nums[1], nums[2]),
            has_patch: parts.len() == 3,
        })
    }

    /// A version made of a major and minor only (`1.33`), as ringmaster writes intermediate
    /// Kubernetes steps.
    pub fn minor(major: u64, minor: u64) -> Version {
        Version {
            raw: format!("{major}.{minor}"),
            core: semver::Version::new(major, minor, 0),
            has_patch: false,
        }
    }

    /// The text exactly as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The `major.minor.patch` core (a missing patch is 0).
    pub fn core(&self) -> &semver::Version {
        &self.core
    }

    /// `(major, minor)`.
    pub fn major_minor(&self) -> (u64, u64) {
        (self.core.major, self.core.minor)
    }

    /// Whether a patch number was written.
    pub fn has_patch(&self) -> bool {
        self.has_patch
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.core == other.core
    }
}
impl Eq for Version {}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core)
    }
}

/// A semver range such as `>=1.31, <1.35`, kept with its text.
#[derive(Debug, Clone)]
pub struct VersionRange {
    raw: String,
    req: semver::VersionReq,
}

impl VersionRange {
    /// Parse a comma-separated list of comparators (`>=1.31, <1.35`, `~1.33`, `^2`).
    pub fn parse(text: &str) -> Result<VersionRange, String> {
        let raw = text.trim();
        semver::VersionReq::parse(raw)
            .map(|req| VersionRange {
                raw: raw.to_owned(),
                req,
            })
            .map_err(|e| {
                format!("`{raw}` is not a version range: {e} (write it like `>=1.31, <1.35`)")
            })
    }

    /// Whether `v`'s core satisfies the range (suffixes are ignored, as everywhere).
    pub fn matches(&self, v: &Version) -> bool {
        self.req.matches(v.core())
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_seen_in_the_wild() {
        for (text, core) in [
            ("1.30", "1.30.0"),
            ("1.33.4", "1.33.4"),
            ("v1.34.2-eks-1234", "1.34.2"),
            ("v1.33.4-eks-1a2b3c", "1.33.4"),
            ("1.19.0-eksbuild.1", "1.19.0"),
            ("v1.12.1-eksbuild.2", "1.12.1"),
            ("2.13.1+build.7", "2.13.1"),
            (" 1.11.3 ", "1.11.3"),
        ] {
            let v = Version::parse(text).unwrap();
            assert_eq!(v.core().to_string(), core, "{text}");
            assert_eq!(v.as_str(), text.trim());
        }
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for text in [
            "", "1", "latest", "1.x", "1..2", "1.2.3.4", "one.two", "1.2beta", "v",
        ] {
            assert!(Version::parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn compares_on_the_core_only() {
        let a = Version::parse("1.11.3-eksbuild.1").unwrap();
        let b = Version::parse("v1.11.3").unwrap();
        assert_eq!(a, b);
        assert!(Version::parse("1.30").unwrap() < Version::parse("1.30.1").unwrap());
        assert!(Version::parse("1.9").unwrap() < Version::parse("1.10").unwrap());
    }

    #[test]
    fn ranges_match_suffixed_versions() {
        let r = VersionRange::parse(">=1.31, <1.35").unwrap();
        assert!(r.matches(&Version::parse("1.31").unwrap()));
        assert!(r.matches(&Version::parse("v1.34.9-eks-1").unwrap()));
        assert!(!r.matches(&Version::parse("1.30.9").unwrap()));
        assert!(!r.matches(&Version::parse("1.35").unwrap()));
        assert!(VersionRange::parse(">=1.31 <<").is_err());
    }
}
