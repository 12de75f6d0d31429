//! Version edits in files that are not YAML (Terraform tfvars, Bicep parameters): a regular
//! expression with a named group `version` that matches exactly once; only that group's bytes change.

use regex::Regex;

/// Why a regex edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegexEditError {
    /// The pattern has no `version` group.
    #[error("the pattern has no named group `version`")]
    NoVersionGroup,
    /// No match.
    #[error("the pattern `{pattern}` does not match")]
    NoMatch {
        /// The pattern.
        pattern: String,
    },
    /// More than one match: refusing to guess.
    #[error("the pattern `{pattern}` matches {count} times; it must match exactly once")]
    Ambiguous {
        /// The pattern.
        pattern: String,
        /// How many times.
        count: usize,
    },
    /// The file is not UTF-8.
    #[error("the file is not UTF-8 text")]
    NotText,
}

/// The result: old value, new text, and whether anything changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexEdit {
    /// The value that was there.
    pub old: String,
    /// The whole new file.
    pub text: String,
    /// Whether the value differed.
    pub changed: bool,
}

/// Replace the `version` group of the single match of `re` in `text` with `value`.
pub fn set_version(text: &str, re: &Regex, value: &str) -> Result<RegexEdit, RegexEditError> {
    if !re.capture_names().flatten().any(|n| n == "version") {
        return Err(RegexEditError::NoVersionGroup);
    }
    let mut found = re.captures_iter(text).filter_map(|c| c.name("version"));
    let Some(m) = found.next() else {
        return Err(RegexEditError::NoMatch {
            pattern: re.as_str().to_owned(),
        });
    };
    let extra = found.count();
    if extra > 0 {
        return Err(RegexEditError::Ambiguous {
            pattern: re.as_str().to_owned(),
            count: extra + 1,
        });
    }
    let old = m.as_str().to_owned();
    let mut out = String::with_capacity(text.len() + value.len());
    out.push_str(&text[..m.start()]);
    out.push_str(value);
    out.push_str(&text[m.end()..]);
    Ok(RegexEdit {
        changed: old != value,
        old,
        text: out,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn edits_only_the_version_group() {
        let re = Regex::new(r#"cluster_version\s*=\s*"(?P<version>[^"]+)""#).unwrap();
        let text = "name = \"x\"\r\ncluster_version = \"1.32\" # keep in sync\r\n";
        let e = set_version(text, &re, "1.33").unwrap();
        assert_eq!(
            e.text,
            "name = \"x\"\r\ncluster_version = \"1.33\" # keep in sync\r\n"
        );
        assert_eq!(e.old, "1.32");
        assert!(e.changed);
        assert!(!set_version(&e.text, &re, "1.33").unwrap().changed);
    }

    #[test]
    fn bicep_parameters() {
        let re =
            Regex::new(r#""kubernetesVersion":\s*\{\s*"value":\s*"(?P<version>[^"]+)""#).unwrap();
        let text = "{\n  \"parameters\": {\n    \"kubernetesVersion\": {\n      \"value\": \"1.32.4\"\n    }\n  }\n}\n";
        let e = set_version(text, &re, "1.33").unwrap();
        assert!(e.text.contains("\"value\": \"1.33\""));
        assert_eq!(e.text.len(), text.len() - 2);
    }

    #[test]
    fn refuses_zero_or_several_matches() {
        let re = Regex::new(r#"v = "(?P<version>[^"]+)""#).unwrap();
        assert!(matches!(
            set_version("nothing", &re, "1"),
            Err(RegexEditError::NoMatch { .. })
        ));
        assert!(matches!(
            set_version("v = \"1\"\nv = \"2\"\n", &re, "3"),
            Err(RegexEditError::Ambiguous { count: 2, .. })
        ));
        let no_group = Regex::new("v").unwrap();
        assert_eq!(
            set_version("v", &no_group, "1"),
            Err(RegexEditError::NoVersionGroup)
        );
    }
}
