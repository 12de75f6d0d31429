//! Minimal-diff editing of one YAML scalar.
//!
//! Ringmaster proposes upgrades as GitOps pull requests, and a reviewer must see a diff that
//! contains nothing but the changed version. [`set_scalar`] therefore replaces the bytes of one
//! scalar token and leaves every other byte of the file (comments, quoting, indentation, line
//! endings, byte order mark, document markers) exactly as it was.
//!
//! The file is read with `granit-parser`'s event stream; the edit is located by walking that
//! stream, the token's byte range is determined from the source text itself, and every edit is
//! verified (re-parsed and read back) before it is returned. Anything that cannot be edited in
//! place without changing the meaning of the file is refused with an [`EditError`] instead of
//! being guessed at.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle, Span};

#[cfg(test)]
mod tests;

pub use rings::yamlpath::{Segment, YamlPath};

/// Why a scalar could not be read or edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The file is not valid YAML (line and column 1-based).
    #[error("not valid YAML at line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// The parser's description of the problem.
        message: String,
    },
    /// No document of the file contains the path.
    #[error("`{path}` not found")]
    NotFound {
        /// The path, in canonical form.
        path: String,
    },
    /// More than one document of a multi-document file contains the path.
    #[error(
        "`{path}` is found in {documents} documents of this file; refusing to guess which one to edit"
    )]
    Ambiguous {
        /// The path, in canonical form.
        path: String,
        /// How many documents contain it.
        documents: usize,
    },
    /// The path leads to a mapping or a sequence.
    #[error("`{path}` is a {kind}, not a scalar")]
    NotAScalar {
        /// The path, in canonical form.
        path: String,
        /// `"mapping"` or `"sequence"`.
        kind: &'static str,
    },
    /// The scalar exists but cannot be edited in place without risk (alias, anchor, tag, block
    /// or multi-line scalar, escapes, duplicate keys, ...).
    #[error("`{path}` cannot be edited safely: {reason}")]
    Unsupported {
        /// The path, in canonical form.
        path: String,
        /// What makes the edit unsafe.
        reason: String,
    },
    /// The target is a plain scalar and the new value would need quotes.
    #[error("`{value}` cannot be written as a plain scalar without changing its meaning")]
    NotPlainSafe {
        /// The rejected value.
        value: String,
    },
    /// The edit was computed but failed its own verification, so it is not returned.
    #[error("edit refused: {reason}")]
    Verification {
        /// What the verification found.
        reason: String,
    },
}

/// The result of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The scalar's previous value.
    pub old: String,
    /// The whole edited file (equal to the input when `changed` is false).
    pub text: String,
    /// Byte range of the old scalar token (quotes included) in the input.
    pub range: Range<usize>,
    /// Whether the file changed; false when the scalar already had the requested value.
    pub changed: bool,
}

/// Read the scalar at `path` (exactly one document of the file must contain it).
///
/// An alias of a scalar reads as the aliased value.
///
/// # Errors
/// [`EditError::Parse`], [`EditError::NotFound`], [`EditError::Ambiguous`],
/// [`EditError::NotAScalar`], or [`EditError::Unsupported`] for duplicate keys on the path or a
/// path that runs through an alias.
pub fn get_scalar(text: &str, path: &YamlPath) -> Result<String, EditError> {
    let events = parse_events(text)?;
    let names = anchor_names(&events);
    let hit = locate(&events, path, &names)?;
    match hit.node {
        HitNode::Scalar { value, .. } => Ok(value),
        HitNode::Alias { target, anchor } => match target {
            AliasTarget::Scalar(value) => Ok(value),
            AliasTarget::Collection(kind) => Err(EditError::NotAScalar {
                path: path.to_string(),
                kind,
            }),
            AliasTarget::Unknown => Err(EditError::Unsupported {
                path: path.to_string(),
                reason: format!(
                    "it is the alias `*{}`, whose anchor could not be resolved",
                    anchor_name(&names, anchor)
                ),
            }),
        },
        HitNode::Collection(kind) => Err(EditError::NotAScalar {
            path: path.to_string(),
            kind,
        }),
    }
}

/// Set the scalar at `path` to `value`, changing only the bytes of that scalar token.
///
/// The token keeps its style: plain stays plain (the value must be plain-safe), single-quoted
/// stays single-quoted, double-quoted stays double-quoted. The edit is verified before it is
/// returned: the bytes outside [`Edit::range`] are unchanged, the edited file parses to the same
/// events apart from the target's value, and [`get_scalar`] reads the new value back.
///
/// # Errors
/// Every error of [`get_scalar`], plus [`EditError::Unsupported`] for targets that cannot be
/// rewritten in place (alias, anchor, explicit tag, block or multi-line scalar, double-quoted
/// scalar with escapes, empty scalar, inside an aliased node, a new value with line breaks or
/// control characters), [`EditError::NotPlainSafe`] and [`EditError::Verification`].
pub fn set_scalar(text: &str, path: &YamlPath, value: &str) -> Result<Edit, EditError> {
    let events = parse_events(text)?;
    let names = anchor_names(&events);
    let hit = locate(&events, path, &names)?;
    let unsupported = |reason: String| EditError::Unsupported {
        path: path.to_string(),
        reason,
    };
    let (old, style, anchor, tagged) = match hit.node {
        HitNode::Scalar {
            value,
            style,
            anchor,
            tagged,
        } => (value, style, anchor, tagged),
        HitNode::Alias { anchor, .. } => {
            return Err(unsupported(format!(
                "it is the alias `*{}`; edit the anchored node instead",
                anchor_name(&names, anchor)
            )));
        }
        HitNode::Collection(kind) => {
            return Err(EditError::NotAScalar {
                path: path.to_string(),
                kind,
            });
        }
    };
    let span = events
        .get(hit.index)
        .map(|(_, span)| *span)
        .ok_or_else(|| unsupported("the parser lost track of it".to_owned()))?;
    if anchor != 0 {
        return Err(unsupported(format!(
            "it carries the anchor `&{}`, so aliases elsewhere may share its value",
            anchor_name(&names, anchor)
        )));
    }
    if tagged {
        let tag = span
            .tag_span()
            .and_then(|tag| tag.slice(text))
            .unwrap_or("an explicit tag");
        return Err(unsupported(format!("it has the explicit tag `{tag}`")));
    }
    if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
        return Err(unsupported("it is a block scalar (`|` or `>`)".to_owned()));
    }
    if let Some(ancestor) = hit.shared_ancestor {
        return Err(unsupported(format!(
            "it is inside the node anchored as `&{}`, which an alias references; the edit would \
             change the alias too",
            anchor_name(&names, ancestor)
        )));
    }
    if old.is_empty() && style == ScalarStyle::Plain {
        return Err(unsupported(
            "it is empty (null), so there is no scalar token to replace".to_owned(),
        ));
    }
    let range = token_range(text, &old, style, &span).map_err(unsupported)?;
    if old == value {
        return Ok(Edit {
            old,
            text: text.to_owned(),
            range,
            changed: false,
        });
    }
    let token = render(value, style, path)?;
    let (Some(before), Some(after)) = (text.get(..range.start), text.get(range.end..)) else {
        return Err(EditError::Verification {
            reason: format!("byte range {range:?} does not fall on character boundaries"),
        });
    };
    let mut edited = String::with_capacity(before.len() + token.len() + after.len());
    edited.push_str(before);
    edited.push_str(&token);
    edited.push_str(after);
    verify(&Check {
        input: text,
        edited: &edited,
        range: &range,
        token: &token,
        events: &events,
        index: hit.index,
        path,
        value,
        style,
    })?;
    Ok(Edit {
        old,
        text: edited,
        range,
        changed: true,
    })
}

type Events<'a> = Vec<(Event<'a>, Span)>;

fn parse_events(text: &str) -> Result<Events<'_>, EditError> {
    let options = granit_parser::options! {
        emit_anchor_events: true,
        emit_comments: false,
    };
    let mut events = Vec::new();
    for item in Parser::new_from_str_with_options(text, options) {
        match item {
            Ok(event) => events.push(event),
            Err(error) => {
                let marker = error.marker();
                let mut message = error.info();
                if message.is_empty() {
                    message = format!("{:?}", error.kind());
                }
                return Err(EditError::Parse {
                    line: marker.line(),
                    column: marker.col().saturating_add(1),
                    message,
                });
            }
        }
    }
    Ok(events)
}

fn anchor_names(events: &[(Event<'_>, Span)]) -> HashMap<usize, String> {
    events
        .iter()
        .filter_map(|(event, _)| match event {
            Event::Anchor(id, name) => Some((*id, name.to_string())),
            _ => None,
        })
        .collect()
}

fn anchor_name(names: &HashMap<usize, String>, id: usize) -> &str {
    names.get(&id).map_or("?", String::as_str)
}

/// What an alias refers to, as far as the walk knows.
#[derive(Debug, Clone)]
enum AliasTarget {
    Scalar(String),
    Collection(&'static str),
    Unknown,
}

/// The node found at the path in one document.
#[derive(Debug)]
enum HitNode {
    Scalar {
        value: String,
        style: ScalarStyle,
        anchor: usize,
        tagged: bool,
    },
    Alias {
        anchor: usize,
        target: AliasTarget,
    },
    Collection(&'static str),
}

#[derive(Debug)]
struct Hit {
    /// Index of the target's node event in the event stream.
    index: usize,
    node: HitNode,
    /// Anchors carried by the collections enclosing the target.
    ancestor_anchors: Vec<usize>,
    /// One of `ancestor_anchors` that an alias in the document refers to.
    shared_ancestor: Option<usize>,
}

#[derive(Debug)]
enum Frame {
    Mapping {
        /// Number of path segments matched to reach this mapping, if it is on the path.
        depth: Option<usize>,
        anchor: usize,
        expect_key: bool,
        /// The current entry's key matches the next path segment.
        key_matches: bool,
        /// Some key of this mapping matched the next path segment already.
        matched: bool,
    },
    Sequence {
        depth: Option<usize>,
        anchor: usize,
        next: usize,
    },
}

enum Role {
    Key,
    Value(Option<usize>),
}

/// Walk state for one document.
#[derive(Debug, Default)]
struct Document {
    stack: Vec<Frame>,
    hit: Option<Result<Hit, EditError>>,
    duplicate: Option<EditError>,
    aliased: HashSet<usize>,
    anchored: HashMap<usize, AliasTarget>,
}

impl Document {
    fn role(&self, segments: &[Segment]) -> Role {
        match self.stack.last() {
            None => Role::Value(Some(0)),
            Some(Frame::Mapping {
                expect_key: true, ..
            }) => Role::Key,
            Some(Frame::Mapping {
                depth, key_matches, ..
            }) => Role::Value(if *key_matches {
                depth.map(|d| d + 1)
            } else {
                None
            }),
            Some(Frame::Sequence { depth, next, .. }) => Role::Value(match depth {
                Some(d) if segments.get(*d) == Some(&Segment::Index(*next)) => Some(d + 1),
                _ => None,
            }),
        }
    }

    /// A key of the innermost mapping: `key` is its text when it is a scalar.
    fn key(&mut self, key: Option<&str>, segments: &[Segment], path: &YamlPath) {
        let Some(Frame::Mapping {
            depth,
            key_matches,
            matched,
            ..
        }) = self.stack.last_mut()
        else {
            return;
        };
        let is_match = match (*depth, key) {
            (Some(d), Some(key)) => {
                matches!(segments.get(d), Some(Segment::Key(wanted)) if wanted == key)
            }
            _ => false,
        };
        let duplicate = is_match && *matched;
        *key_matches = is_match;
        *matched |= is_match;
        if duplicate && self.duplicate.is_none() {
            self.duplicate = Some(EditError::Unsupported {
                path: path.to_string(),
                reason: format!(
                    "the key `{}` appears more than once in the same mapping",
                    key.unwrap_or_default()
                ),
            });
        }
    }

    /// The current node is finished: advance the enclosing collection.
    fn complete(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping {
                expect_key,
                key_matches,
                ..
            }) => {
                if *expect_key {
                    *expect_key = false;
                } else {
                    *expect_key = true;
                    *key_matches = false;
                }
            }
            Some(Frame::Sequence { next, .. }) => *next = next.saturating_add(1),
            None => {}
        }
    }

    fn ancestor_anchors(&self) -> Vec<usize> {
        self.stack
            .iter()
            .map(|frame| match frame {
                Frame::Mapping { anchor, .. } | Frame::Sequence { anchor, .. } => *anchor,
            })
            .filter(|anchor| *anchor != 0)
            .collect()
    }

    fn set_hit(&mut self, index: usize, node: HitNode) {
        if self.hit.is_none() {
            let ancestor_anchors = self.ancestor_anchors();
            self.hit = Some(Ok(Hit {
                index,
                node,
                ancestor_anchors,
                shared_ancestor: None,
            }));
        }
    }

    /// Enter a collection; returns the depth to record for its frame.
    fn enter(
        &mut self,
        index: usize,
        kind: &'static str,
        anchor: usize,
        segments: &[Segment],
        path: &YamlPath,
    ) -> Option<usize> {
        if anchor != 0 {
            self.anchored.insert(anchor, AliasTarget::Collection(kind));
        }
        match self.role(segments) {
            Role::Key => {
                self.key(None, segments, path);
                None
            }
            Role::Value(Some(d)) if d == segments.len() => {
                self.set_hit(index, HitNode::Collection(kind));
                None
            }
            Role::Value(depth) => depth,
        }
    }

    fn finish(&mut self) -> Option<Result<Hit, EditError>> {
        if let Some(error) = self.duplicate.take() {
            self.hit = None;
            return Some(Err(error));
        }
        let mut hit = self.hit.take()?;
        if let Ok(hit) = &mut hit {
            hit.shared_ancestor = hit
                .ancestor_anchors
                .iter()
                .copied()
                .find(|anchor| self.aliased.contains(anchor));
        }
        Some(hit)
    }
}

/// Find the node at `path`; exactly one document may contain it.
fn locate(
    events: &[(Event<'_>, Span)],
    path: &YamlPath,
    names: &HashMap<usize, String>,
) -> Result<Hit, EditError> {
    let segments = path.segments();
    let mut found: Vec<Result<Hit, EditError>> = Vec::new();
    let mut doc = Document::default();
    for (index, (event, span)) in events.iter().enumerate() {
        match event {
            Event::DocumentStart(..) => doc = Document::default(),
            Event::DocumentEnd => {
                found.extend(doc.finish());
                doc = Document::default();
            }
            Event::Scalar(value, style, anchor, tag) => {
                if *anchor != 0 {
                    doc.anchored
                        .insert(*anchor, AliasTarget::Scalar(value.to_string()));
                }
                match doc.role(segments) {
                    Role::Key => doc.key(Some(value), segments, path),
                    Role::Value(Some(d)) if d == segments.len() => {
                        // The parser reports an empty node (`key:`) as a plain `~` with an
                        // empty span; there is no token in the source for it.
                        let empty = *style == ScalarStyle::Plain && span.start == span.end;
                        doc.set_hit(
                            index,
                            HitNode::Scalar {
                                value: if empty {
                                    String::new()
                                } else {
                                    value.to_string()
                                },
                                style: *style,
                                anchor: *anchor,
                                tagged: tag.is_some(),
                            },
                        );
                    }
                    Role::Value(_) => {}
                }
                doc.complete();
            }
            Event::Alias(anchor) => {
                doc.aliased.insert(*anchor);
                let target = doc
                    .anchored
                    .get(anchor)
                    .cloned()
                    .unwrap_or(AliasTarget::Unknown);
                match doc.role(segments) {
                    Role::Key => {
                        let key = match &target {
                            AliasTarget::Scalar(key) => Some(key.as_str()),
                            _ => None,
                        };
                        doc.key(key, segments, path);
                    }
                    Role::Value(Some(d)) if d == segments.len() => doc.set_hit(
                        index,
                        HitNode::Alias {
                            anchor: *anchor,
                            target,
                        },
                    ),
                    Role::Value(Some(d)) => {
                        if doc.hit.is_none() {
                            let prefix = YamlPath::from_segments(
                                segments.get(..d).unwrap_or_default().to_vec(),
                            );
                            doc.hit = Some(Err(EditError::Unsupported {
                                path: path.to_string(),
                                reason: format!(
                                    "`{prefix}` is the alias `*{}` and paths are not followed \
                                     through aliases",
                                    anchor_name(names, *anchor)
                                ),
                            }));
                        }
                    }
                    Role::Value(None) => {}
                }
                doc.complete();
            }
            Event::MappingStart(_, anchor, _) => {
                let depth = doc.enter(index, "mapping", *anchor, segments, path);
                doc.stack.push(Frame::Mapping {
                    depth,
                    anchor: *anchor,
                    expect_key: true,
                    key_matches: false,
                    matched: false,
                });
            }
            Event::SequenceStart(_, anchor, _) => {
                let depth = doc.enter(index, "sequence", *anchor, segments, path);
                doc.stack.push(Frame::Sequence {
                    depth,
                    anchor: *anchor,
                    next: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                doc.stack.pop();
                doc.complete();
            }
            _ => {}
        }
    }
    found.extend(doc.finish());
    let documents = found.len();
    let mut found = found.into_iter();
    match (found.next(), documents) {
        (Some(only), 1) => only,
        (None, _) => Err(EditError::NotFound {
            path: path.to_string(),
        }),
        _ => Err(EditError::Ambiguous {
            path: path.to_string(),
            documents,
        }),
    }
}

/// Byte range of the scalar token (quotes included) whose value is `value`.
///
/// Parser spans are not trusted for the end of the token (plain scalar spans can include a
/// trailing comment); the token is measured from its start in the source text instead.
fn token_range(
    text: &str,
    value: &str,
    style: ScalarStyle,
    span: &Span,
) -> Result<Range<usize>, String> {
    const MULTI_LINE: &str = "it spans several lines";
    let start = span
        .start
        .byte_offset()
        .ok_or_else(|| "the parser reported no byte offset for it".to_owned())?;
    if span.start.line() != span.end.line() {
        return Err(MULTI_LINE.to_owned());
    }
    let mismatch = || format!("its source text at byte {start} does not match its value");
    let bytes = text.as_bytes();
    match style {
        ScalarStyle::Plain => {
            let end = start.checked_add(value.len()).ok_or_else(mismatch)?;
            if value.contains(['\n', '\r']) {
                return Err(MULTI_LINE.to_owned());
            }
            if text.get(start..end) == Some(value) {
                Ok(start..end)
            } else {
                Err(mismatch())
            }
        }
        ScalarStyle::SingleQuoted => {
            if bytes.get(start) != Some(&b'\'') {
                return Err(mismatch());
            }
            let mut i = start + 1;
            loop {
                match bytes.get(i) {
                    None => return Err(mismatch()),
                    Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                    Some(b'\'') => break,
                    Some(b'\n' | b'\r') => return Err(MULTI_LINE.to_owned()),
                    Some(_) => i += 1,
                }
            }
            match text.get(start + 1..i) {
                Some(content) if content.replace("''", "'") == value => Ok(start..i + 1),
                _ => Err(mismatch()),
            }
        }
        ScalarStyle::DoubleQuoted => {
            if bytes.get(start) != Some(&b'"') {
                return Err(mismatch());
            }
            let mut i = start + 1;
            loop {
                match bytes.get(i) {
                    None => return Err(mismatch()),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        return Err(
                            "it is a double-quoted scalar with escape sequences (`\\`), \
                                    which cannot be rewritten byte for byte"
                                .to_owned(),
                        );
                    }
                    Some(b'\n' | b'\r') => return Err(MULTI_LINE.to_owned()),
                    Some(_) => i += 1,
                }
            }
            match text.get(start + 1..i) {
                Some(content) if content == value => Ok(start..i + 1),
                _ => Err(mismatch()),
            }
        }
        ScalarStyle::Literal | ScalarStyle::Folded => {
            Err("it is a block scalar (`|` or `>`)".to_owned())
        }
    }
}

/// The new token for `value` in `style`.
fn render(value: &str, style: ScalarStyle, path: &YamlPath) -> Result<String, EditError> {
    let one_line = || {
        if value
            .chars()
            .any(|c| (c.is_control() && c != '\t') || c == '\u{feff}')
        {
            Err(EditError::Unsupported {
                path: path.to_string(),
                reason: "the new value contains a line break or another control character, \
                         which a one-line quoted scalar cannot hold without escapes"
                    .to_owned(),
            })
        } else {
            Ok(())
        }
    };
    match style {
        ScalarStyle::Plain if is_plain_safe(value) => Ok(value.to_owned()),
        ScalarStyle::Plain => Err(EditError::NotPlainSafe {
            value: value.to_owned(),
        }),
        ScalarStyle::SingleQuoted => {
            one_line()?;
            Ok(format!("'{}'", value.replace('\'', "''")))
        }
        ScalarStyle::DoubleQuoted => {
            one_line()?;
            Ok(format!(
                "\"{}\"",
                value.replace('\\', "\\\\").replace('"', "\\\"")
            ))
        }
        ScalarStyle::Literal | ScalarStyle::Folded => Err(EditError::Unsupported {
            path: path.to_string(),
            reason: "it is a block scalar (`|` or `>`)".to_owned(),
        }),
    }
}

/// Whether `value` reads back as the same string when written as a plain scalar:
/// `[A-Za-z0-9][A-Za-z0-9._+-]*` and not a YAML 1.1 boolean or null word.
fn is_plain_safe(value: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
    ];
    let mut bytes = value.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        && !WORDS.contains(&value)
}

struct Check<'a> {
    input: &'a str,
    edited: &'a str,
    range: &'a Range<usize>,
    token: &'a str,
    events: &'a [(Event<'a>, Span)],
    index: usize,
    path: &'a YamlPath,
    value: &'a str,
    style: ScalarStyle,
}

/// Refuse the edit unless it changed exactly the target scalar's value.
fn verify(check: &Check<'_>) -> Result<(), EditError> {
    let fail = |reason: String| EditError::Verification { reason };
    let start = check.range.start;
    let new_end = start.saturating_add(check.token.len());
    let prefix_same = matches!(
        (check.edited.get(..start), check.input.get(..start)),
        (Some(a), Some(b)) if a == b
    );
    let suffix_same = matches!(
        (check.edited.get(new_end..), check.input.get(check.range.end..)),
        (Some(a), Some(b)) if a == b
    );
    if !prefix_same || !suffix_same {
        return Err(fail("bytes outside the edited scalar changed".to_owned()));
    }
    let after = parse_events(check.edited)
        .map_err(|e| fail(format!("the edited file no longer parses ({e})")))?;
    if after.len() != check.events.len() {
        return Err(fail(format!(
            "the edited file has {} parser events instead of {}",
            after.len(),
            check.events.len()
        )));
    }
    for (i, ((old, _), (new, _))) in check.events.iter().zip(&after).enumerate() {
        if i == check.index {
            let ok = matches!(
                new,
                Event::Scalar(value, style, 0, None)
                    if value == check.value && *style == check.style
            );
            if !ok {
                return Err(fail(format!("the edited scalar reads back as {new:?}")));
            }
        } else if old != new {
            return Err(fail(format!(
                "the edit changed another part of the file: {old:?} became {new:?}"
            )));
        }
    }
    match get_scalar(check.edited, check.path) {
        Ok(read) if read == check.value => Ok(()),
        Ok(read) => Err(fail(format!("`{}` reads back as `{read}`", check.path))),
        Err(e) => Err(fail(format!("`{}` cannot be read back: {e}", check.path))),
    }
}
