//! YAML (and JSON, which is YAML) parsing into raw structs, errors turned into diagnostics.

use serde::de::DeserializeOwned;

use crate::diag::{Diagnostics, Pos, did_you_mean};

/// How many unknown fields one file may report before recovery gives up.
const MAX_RECOVERIES: usize = 50;

/// Parse one document. On failure the error is recorded and `None` returned.
///
/// serde stops at the first error, but `validate` must report every problem: an unknown field
/// in block style is blanked out (its line and its more-indented children, keeping line
/// numbers) and parsing is retried, so later unknown fields and the semantic checks of the
/// rest of the file are still reported. The value returned after a recovery is used for
/// diagnostics only: the file already has an error, so loading fails.
pub(crate) fn parse_one<T: DeserializeOwned>(
    file: &str,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    parse_recovering(file, text, diags, |t| serde_saphyr::from_str::<T>(t))
}

/// Parse every document of a multi-document file, recovering like [`parse_one`].
pub(crate) fn parse_many<T: DeserializeOwned>(
    file: &str,
    text: &str,
    diags: &mut Diagnostics,
) -> Vec<T> {
    parse_recovering(file, text, diags, |t| serde_saphyr::from_multiple::<T>(t)).unwrap_or_default()
}

fn parse_recovering<T>(
    file: &str,
    text: &str,
    diags: &mut Diagnostics,
    parse: impl Fn(&str) -> Result<T, serde_saphyr::Error>,
) -> Option<T> {
    let mut current = std::borrow::Cow::Borrowed(text);
    // Fields suggested for misspelled keys: once such a key is blanked, serde reports the
    // suggested field as missing, which only repeats the first message.
    let mut suggested: Vec<String> = Vec::new();
    for _ in 0..=MAX_RECOVERIES {
        match parse(&current) {
            Ok(v) => return Some(v),
            Err(e) => {
                let message = clean_message(&e.without_snippet().to_string());
                let echo = message
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                    .is_some_and(|field| suggested.iter().any(|s| s == field));
                if echo {
                    return None;
                }
                if let Some(hint) = hint_for(&message) {
                    suggested.push(
                        hint.trim_start_matches("did you mean `")
                            .trim_end_matches("`?")
                            .to_owned(),
                    );
                }
                record(file, &e, diags);
                let recoverable = message.starts_with("unknown field `");
                match e
                    .location()
                    .filter(|_| recoverable)
                    .and_then(|l| blank_entry(&current, &l))
                {
                    Some(next) => current = std::borrow::Cow::Owned(next),
                    None => return None,
                }
            }
        }
    }
    None
}

/// Blank the block-mapping entry whose key starts at `loc` (and its children), keeping every
/// line so that later positions stay right. `None` when the key is not in block style.
fn blank_entry(text: &str, loc: &serde_saphyr::Location) -> Option<String> {
    let line = usize::try_from(loc.line()).ok()?.checked_sub(1)?;
    let col = usize::try_from(loc.column()).ok()?.checked_sub(1)?;
    let lines: Vec<&str> = text.split('\n').collect();
    let key_line = lines.get(line)?;
    // The key must be the first thing on its line (block style), possibly after `- `.
    let before = key_line.get(..col)?;
    let item = before.trim() == "-";
    if !(before.trim().is_empty() || item) {
        return None;
    }
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    // `- bad: x` keeps its sequence item alive as an empty mapping followed by its other keys.
    out[line] = if item {
        format!("{before}{{}}")
    } else {
        String::new()
    };
    for l in out.iter_mut().skip(line + 1) {
        let trimmed = l.trim_start_matches(' ');
        let indent = l.len() - trimmed.len();
        if item && indent == col {
            // A sibling key of the item: `{}` above would now clash with it; stop blanking.
            break;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || indent > col {
            l.clear();
        } else {
            break;
        }
    }
    Some(out.join("\n"))
}

fn record(file: &str, e: &serde_saphyr::Error, diags: &mut Diagnostics) {
    let pos = e
        .location()
        .map(|l| Pos::from_location(&l))
        .unwrap_or(Pos::FILE);
    let message =
        budget_message(e).unwrap_or_else(|| clean_message(&e.without_snippet().to_string()));
    match hint_for(&message) {
        Some(hint) => diags.error_hint(file, pos, message, hint),
        None => diags.error(file, pos, message),
    }
}

/// A parser limit that the file breaks, for people: which limit, how far the file went, the
/// limit (the parser prints `budget breached: ScalarBytes { total_scalar_bytes: … }`).
/// `None` for any other error.
fn budget_message(e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::budget::BudgetBreach as B;
    let mut e = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = e
    {
        e = error;
    }
    let serde_saphyr::Error::Budget { breach, .. } = e else {
        return None;
    };
    let limits = serde_saphyr::Budget::default();
    let (what, value, limit) = match breach {
        B::Events { events } => (
            "parser events",
            events.to_string(),
            limits.max_events.to_string(),
        ),
        B::Aliases { aliases } => (
            "aliases (`*name`)",
            aliases.to_string(),
            limits.max_aliases.to_string(),
        ),
        B::Anchors { anchors } => (
            "anchors (`&name`)",
            anchors.to_string(),
            limits.max_anchors.to_string(),
        ),
        B::Depth { depth } => (
            "levels of nesting",
            depth.to_string(),
            limits.max_depth.to_string(),
        ),
        B::Documents { documents } => (
            "documents",
            documents.to_string(),
            limits.max_documents.to_string(),
        ),
        B::Nodes { nodes } => (
            "values (nodes)",
            nodes.to_string(),
            limits.max_nodes.to_string(),
        ),
        B::ScalarBytes { total_scalar_bytes } => (
            "bytes of text in values",
            total_scalar_bytes.to_string(),
            limits.max_total_scalar_bytes.to_string(),
        ),
        B::MergeKeys { merge_keys } => (
            "merge keys (`<<`)",
            merge_keys.to_string(),
            limits.max_merge_keys.to_string(),
        ),
        B::AliasAnchorRatio { aliases, anchors } => {
            return Some(format!(
                "the YAML expands {aliases} aliases from {anchors} anchors (more than {} aliases per anchor): refused as an alias bomb",
                limits.alias_anchor_ratio_multiplier
            ));
        }
        _ => {
            return Some("the YAML is too large or too complex for the parser's limits".to_owned());
        }
    };
    Some(format!(
        "the YAML has too many {what}: {value}, the limit is {limit} (refused as a resource bomb)"
    ))
}

/// Strip the parser's own `error: line N column M:` prefix (we print `file:line:col` ourselves)
/// and any snippet lines.
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let stripped = match first.strip_prefix("line ") {
        Some(rest) => rest
            .split_once(": ")
            .filter(|(loc, _)| loc.contains("column"))
            .map_or(first, |(_, msg)| msg),
        None => first,
    };
    // serde's own messages may end in ` at line N, column M`; the position is printed already.
    let stripped = match stripped.rfind(" at line ") {
        Some(i) if stripped[i..].contains(", column ") => &stripped[..i],
        _ => stripped,
    };
    stripped.trim().to_owned()
}

/// For `unknown field `x`, expected one of a, b` (and the same for variants), suggest the
/// closest expected name.
fn hint_for(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (word, tail) = rest.split_once('`')?;
    let expected = tail
        .split_once("expected one of ")
        .map(|(_, list)| list)
        .or_else(|| tail.split_once("expected ").map(|(_, list)| list))?;
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`').trim_end_matches(']').trim())
        .filter(|c| !c.is_empty())
        .collect();
    did_you_mean(word, candidates.iter().copied()).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_the_parser_prefix() {
        assert_eq!(
            clean_message("error: line 2 column 20: expected string scalar"),
            "expected string scalar"
        );
        assert_eq!(clean_message("missing field `x`"), "missing field `x`");
        assert_eq!(
            clean_message("unknown field `sok`, expected one of a, b at line 7, column 5"),
            "unknown field `sok`, expected one of a, b"
        );
    }

    #[test]
    fn an_unknown_field_is_blanked_with_its_children() {
        let text = "a: 1\nbad:\n  x: 1\n  y: 2\nc: 3\n";
        let loc = serde_saphyr::from_str::<Strict>(text)
            .unwrap_err()
            .location()
            .unwrap();
        assert_eq!(blank_entry(text, &loc).unwrap(), "a: 1\n\n\n\nc: 3\n");
    }

    #[test]
    fn every_unknown_field_is_reported() {
        let mut d = Diagnostics::new();
        let v = parse_one::<Strict>("f.yaml", "a: 1\nbd: 2\nc: 3\ncc: 4\n", &mut d);
        assert!(v.is_some());
        let lines: Vec<String> = d.sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("f.yaml:2:1: error: unknown field `bd`"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("f.yaml:4:1: error: unknown field `cc`"),
            "{lines:?}"
        );
    }

    /// Parser limits read as sentences naming the limit, the value and the limit, not as
    /// the parser's `ScalarBytes { … }` structs (issue 16 item 12).
    #[test]
    fn budget_breaches_name_the_limit() {
        let report = |text: &str| {
            let mut d = Diagnostics::new();
            assert!(parse_one::<serde_json::Value>("f.yaml", text, &mut d).is_none());
            d.sorted().iter().map(|d| d.to_string()).collect::<Vec<_>>()
        };
        let deep = format!("a: {}1{}\n", "[".repeat(80), "]".repeat(80));
        let lines = report(&deep);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("too many levels of nesting: 65, the limit is 64"),
            "{lines:?}"
        );
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, prev) in ["b", "c", "d", "e", "f", "g"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f"])
        {
            bomb.push_str(&format!(
                "{i}: &{i} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        let lines = report(&bomb);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(!lines[0].contains('{'), "{lines:?}");
        assert!(
            lines[0].contains("too many values (nodes): 250001, the limit is 250000"),
            "{lines:?}"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        a: u32,
        #[serde(default)]
        c: u32,
    }

    #[test]
    fn hints_come_from_the_expected_list() {
        assert_eq!(
            hint_for("unknown field `kubernetesVersoin`, expected one of clusterId, kubernetesVersion, addons")
                .as_deref(),
            Some("did you mean `kubernetesVersion`?")
        );
        assert_eq!(
            hint_for("unknown field `zzz`, expected one of clusterId, addons"),
            None
        );
    }
}
