//! Diagnostics: every problem found while loading, with the file, line and column it came from.
//!
//! Loading never stops at the first problem: each phase pushes what it finds into a
//! [`Diagnostics`] collector so that `ringmaster validate` can report everything at once.

use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; loading succeeds.
    Warning,
    /// The configuration cannot be used.
    Error,
}

/// A position in a source file, 1-based. `line == 0` means "the whole file".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub col: u32,
}

impl Pos {
    /// The start of a file (used for whole-file problems).
    pub const FILE: Pos = Pos { line: 0, col: 0 };

    /// A position from a YAML parser location.
    pub fn from_location(loc: &serde_saphyr::Location) -> Pos {
        Pos {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            col: u32::try_from(loc.column()).unwrap_or(u32::MAX),
        }
    }
}

/// One finding, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file as the user knows it: a path relative to the working directory, or
    /// `<repo>@<branch>:<path>` for files read from the GitOps repository.
    pub file: String,
    /// Where in the file.
    pub pos: Pos,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.pos.line == 0 {
            write!(f, "{}: {level}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {level}: {}",
                self.file, self.pos.line, self.pos.col, self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// A collector of findings.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record an error.
    pub fn error(&mut self, file: &str, pos: Pos, message: impl Into<String>) {
        self.push(Severity::Error, file, pos, message.into(), None);
    }

    /// Record an error with a hint.
    pub fn error_hint(
        &mut self,
        file: &str,
        pos: Pos,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(
            Severity::Error,
            file,
            pos,
            message.into(),
            Some(hint.into()),
        );
    }

    /// Record a warning.
    pub fn warning(&mut self, file: &str, pos: Pos, message: impl Into<String>) {
        self.push(Severity::Warning, file, pos, message.into(), None);
    }

    /// Record a finding of the given severity.
    pub fn push(
        &mut self,
        severity: Severity,
        file: &str,
        pos: Pos,
        message: String,
        hint: Option<String>,
    ) {
        self.items.push(Diagnostic {
            severity,
            file: file.to_owned(),
            pos,
            message,
            hint,
        });
    }

    /// Add every finding of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// True when at least one error was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Findings sorted by file, position and message, errors and warnings interleaved as they
    /// appear in the files.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut v: Vec<&Diagnostic> = self.items.iter().collect();
        v.sort_by(|a, b| {
            (&a.file, a.pos.line, a.pos.col, &a.message)
                .cmp(&(&b.file, b.pos.line, b.pos.col, &b.message))
        });
        v
    }

    /// Only the errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    /// Only the warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// Number of findings.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The closest candidate to `word` by edit distance, if close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + usize::from(word.len() > 6);
    candidates
        .into_iter()
        .map(|c| {
            (
                levenshtein(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between two strings, in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    levenshtein(a, b)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["kubernetesVersion", "clusterId", "addons", "policies"];
        assert_eq!(
            did_you_mean("kubernetesVersoin", fields),
            Some("kubernetesVersion")
        );
        assert_eq!(did_you_mean("clusterID", fields), Some("clusterId"));
        assert_eq!(did_you_mean("addon", fields), Some("addons"));
        assert_eq!(did_you_mean("zone", fields), None);
    }

    #[test]
    fn display_names_file_line_col() {
        let mut d = Diagnostics::new();
        d.error_hint(
            "rings.yaml",
            Pos { line: 3, col: 5 },
            "unknown field `sok`",
            "did you mean `soak`?",
        );
        d.warning("rings.yaml", Pos::FILE, "ring `x` has no clusters");
        let text: Vec<String> = d.sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            text,
            [
                "rings.yaml: warning: ring `x` has no clusters",
                "rings.yaml:3:5: error: unknown field `sok` (did you mean `soak`?)"
            ]
        );
        assert!(d.has_errors());
    }
}
