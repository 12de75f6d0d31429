//! Path globs for the registry and release files: `*` and `?` within one path segment,
//! `**` for any number of segments. Paths use `/`.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    segments: Vec<String>,
}

impl Glob {
    /// Compile. Absolute patterns and `..` segments are refused: a glob selects files inside one tree.
    pub fn new(text: &str) -> Result<Glob, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty glob".to_owned());
        }
        if t.starts_with('/') {
            return Err(format!("glob `{t}` must be relative"));
        }
        let segments: Vec<String> = t.split('/').map(str::to_owned).collect();
        if segments.iter().any(|s| s == ".." || s.is_empty()) {
            return Err(format!(
                "glob `{t}` must not contain `..` or empty segments"
            ));
        }
        Ok(Glob {
            text: t.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The leading segments without wildcards (a directory to start listing from).
    pub fn literal_prefix(&self) -> Vec<&str> {
        self.segments
            .iter()
            .take_while(|s| !s.contains(['*', '?']))
            .map(String::as_str)
            .collect()
    }

    /// Whether a `/`-separated relative path matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        match_segments(&self.segments, &parts)
    }

    /// Whether files below directory `dir` could match (used to prune tree walks).
    pub fn could_match_below(&self, dir: &str) -> bool {
        if dir.is_empty() {
            return true;
        }
        let parts: Vec<&str> = dir.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            match self.segments.get(i) {
                None => return false,
                Some(s) if s == "**" => return true,
                Some(s) if !match_segment(s.as_bytes(), part.as_bytes()) => return false,
                Some(_) => {}
            }
        }
        parts.len() < self.segments.len()
    }
}

fn match_segments(pattern: &[String], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..]))
        }
        Some((first, rest)) => match parts.split_first() {
            Some((p, prest)) => {
                match_segment(first.as_bytes(), p.as_bytes()) && match_segments(rest, prest)
            }
            None => false,
        },
    }
}

fn match_segment(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn double_star_spans_directories() {
        let g = Glob::new("clusters/**/cluster.yaml").unwrap();
        assert!(g.matches("clusters/cluster.yaml"));
        assert!(g.matches("clusters/aws/x/cluster.yaml"));
        assert!(!g.matches("clusters/aws/x/cluster.yml"));
        assert!(!g.matches("other/aws/cluster.yaml"));
        assert!(g.could_match_below("clusters/aws"));
        assert!(!g.could_match_below("terraform"));
    }

    #[test]
    fn single_star_stays_in_a_segment() {
        let g = Glob::new("releases/*.yaml").unwrap();
        assert!(g.matches("releases/01-k8s.yaml"));
        assert!(!g.matches("releases/old/01.yaml"));
        assert!(!g.could_match_below("releases/old"));
        assert_eq!(g.literal_prefix(), ["releases"]);
        let g = Glob::new("c?/a*b*c.yaml").unwrap();
        assert!(g.matches("c1/abxxbyc.yaml"));
        assert!(!g.matches("c12/abc.yaml"));
    }

    #[test]
    fn refuses_escaping_patterns() {
        assert!(Glob::new("../x/*.yaml").is_err());
        assert!(Glob::new("/etc/*.yaml").is_err());
        assert!(Glob::new("").is_err());
    }
}
