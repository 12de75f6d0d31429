//! Paths to YAML scalars, as written in `edits:` rules (`.spec.chart.spec.version`) and used by
//! the GitOps engine's format-preserving editor.

use std::fmt;

/// A path to a scalar: `kubernetesVersion`, `addons.coredns`, `.spec.chart.spec.version`,
/// `spec.values[0].tag`, `metadata.annotations["example.com/version"]` (a leading dot is
/// optional; bracketed quoted keys allow dots and slashes).
///
/// A bare key is any run of characters other than whitespace, control characters and
/// `.`, `[`, `]`, `"`, `'`, `\`. A bracketed key is quoted with `"` or `'`; inside it a backslash
/// takes the next character literally. `[N]` is a zero-based sequence index. The path `.`
/// addresses the root node of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlPath {
    segments: Vec<Segment>,
}

/// One step of a [`YamlPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key, compared with the key's scalar value (quoting style is irrelevant).
    Key(String),
    /// A zero-based index into a sequence.
    Index(usize),
}

impl YamlPath {
    /// Parse a path such as `spec.values[0].tag` or `metadata.annotations["example.com/v"]`.
    ///
    /// # Errors
    /// Returns a human-readable message when the text is empty or not a well-formed path.
    pub fn parse(text: &str) -> Result<YamlPath, String> {
        if text.is_empty() {
            return Err("the path is empty".to_owned());
        }
        let mut chars = text.char_indices().peekable();
        if chars.next_if(|&(_, c)| c == '.').is_some() && chars.peek().is_none() {
            return Ok(YamlPath {
                segments: Vec::new(),
            });
        }
        let mut segments = Vec::new();
        loop {
            // A segment must start here: a bare key or a bracket.
            match chars.peek().copied() {
                None => return Err(format!("`{text}` ends where a key was expected")),
                Some((_, '[')) => {
                    chars.next();
                    segments.push(parse_bracket(&mut chars, text)?);
                }
                Some((_, c)) if is_bare_char(c) => {
                    let mut key = String::new();
                    while let Some((_, c)) = chars.next_if(|&(_, c)| is_bare_char(c)) {
                        key.push(c);
                    }
                    segments.push(Segment::Key(key));
                }
                Some((at, c)) => {
                    return Err(format!(
                        "unexpected `{c}` at byte {at} of `{text}`; quote such keys as [\"...\"]"
                    ));
                }
            }
            // After a segment: the end, a bracket, or a dot introducing the next segment.
            loop {
                match chars.next() {
                    None => return Ok(YamlPath { segments }),
                    Some((_, '.')) => break,
                    Some((_, '[')) => segments.push(parse_bracket(&mut chars, text)?),
                    Some((at, c)) => {
                        return Err(format!(
                            "unexpected `{c}` at byte {at} of `{text}`; expected `.`, `[` or the end"
                        ));
                    }
                }
            }
        }
    }

    /// A path made of plain mapping keys, taken literally (dots in a key are not separators).
    pub fn keys(keys: &[&str]) -> YamlPath {
        YamlPath {
            segments: keys.iter().map(|k| Segment::Key((*k).to_owned())).collect(),
        }
    }

    /// A path made of these segments.
    pub fn from_segments(segments: Vec<Segment>) -> YamlPath {
        YamlPath { segments }
    }

    /// The segments of the path, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Parse the rest of a `[...]` segment; the opening bracket has been consumed.
fn parse_bracket(chars: &mut Chars<'_>, text: &str) -> Result<Segment, String> {
    let segment = match chars.next() {
        Some((_, quote @ ('"' | '\''))) => {
            let mut key = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted key in `{text}`")),
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => key.push(c),
                        None => return Err(format!("unterminated quoted key in `{text}`")),
                    },
                    Some((_, c)) if c == quote => break,
                    Some((_, c)) => key.push(c),
                }
            }
            Segment::Key(key)
        }
        Some((at, c)) if c.is_ascii_digit() => {
            let mut digits = String::from(c);
            while let Some((_, d)) = chars.next_if(|&(_, d)| d.is_ascii_digit()) {
                digits.push(d);
            }
            let index = digits
                .parse::<usize>()
                .map_err(|e| format!("index at byte {at} of `{text}`: {e}"))?;
            Segment::Index(index)
        }
        Some((at, c)) => {
            return Err(format!(
                "unexpected `{c}` at byte {at} of `{text}`; expected an index or a quoted key"
            ));
        }
        None => return Err(format!("unterminated `[` in `{text}`")),
    };
    match chars.next() {
        Some((_, ']')) => Ok(segment),
        Some((at, c)) => Err(format!(
            "unexpected `{c}` at byte {at} of `{text}`; expected `]`"
        )),
        None => Err(format!("unterminated `[` in `{text}`")),
    }
}

fn is_bare_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !matches!(c, '.' | '[' | ']' | '"' | '\'' | '\\')
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str(".");
        }
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if !key.is_empty() && key.chars().all(is_bare_char) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => {
                    f.write_str("[\"")?;
                    for c in key.chars() {
                        if matches!(c, '"' | '\\') {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"]")?;
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}
