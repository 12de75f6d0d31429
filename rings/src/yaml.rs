//! YAML (and JSON, which is YAML) parsing into raw structs, errors turned into diagnostics.

use serde::de::DeserializeOwned;

use crate::diag::{Diagnostics, Pos, did_you_mean};

/// Parse one document. On failure the error is recorded and `None` returned.
pub(crate) fn parse_one<T: DeserializeOwned>(
    file: &str,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    match serde_saphyr::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            record(file, &e, diags);
            None
        }
    }
}

/// Parse every document of a multi-document file.
pub(crate) fn parse_many<T: DeserializeOwned>(
    file: &str,
    text: &str,
    diags: &mut Diagnostics,
) -> Vec<T> {
    match serde_saphyr::from_multiple::<T>(text) {
        Ok(v) => v,
        Err(e) => {
            record(file, &e, diags);
            Vec::new()
        }
    }
}

fn record(file: &str, e: &serde_saphyr::Error, diags: &mut Diagnostics) {
    let pos = e
        .location()
        .map(|l| Pos::from_location(&l))
        .unwrap_or(Pos::FILE);
    let message = clean_message(&e.without_snippet().to_string());
    match hint_for(&message) {
        Some(hint) => diags.error_hint(file, pos, message, hint),
        None => diags.error(file, pos, message),
    }
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
