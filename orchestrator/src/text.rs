//! Free text that comes from people (the API, the CLI) before it is stored or logged: pause and
//! freeze reasons, `--as` names. Control characters are gone (an ANSI escape or a newline in a
//! reason would rewrite a terminal showing `status`, or forge a log line) and lengths are capped.

/// The longest reason kept, in characters; the rest is cut and marked with `…`.
pub const MAX_TEXT_CHARS: usize = 500;
/// The longest name (`--as`, `by`) kept, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// `text` without control characters: ANSI escape sequences are removed, any other control
/// character (newline, tab, carriage return, …) becomes a space; runs of spaces are one; trimmed
/// and at most `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI (`ESC [ … final`) and OSC (`ESC ] … BEL` or `ESC \`); any other escape
            // drops the next character only.
            match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_end();
    if out.chars().count() > max {
        let cut: String = out.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    } else {
        out.to_owned()
    }
}

/// A reason (pause, abort, freeze): [`clean`] to [`MAX_TEXT_CHARS`].
pub fn clean_text(text: &str) -> String {
    clean(text, MAX_TEXT_CHARS)
}

/// A name (`--as`, `by`): [`clean`] to [`MAX_NAME_CHARS`].
pub fn clean_name(name: &str) -> String {
    clean(name, MAX_NAME_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_newlines_are_gone() {
        assert_eq!(
            clean_text("\u{1b}[31mred\u{1b}[0m alert\nfake: line\r\n\ttab"),
            "red alert fake: line tab"
        );
        assert_eq!(
            clean_text("title\u{1b}]0;owned\u{7}after \u{1b}]8;;x\u{1b}\\link"),
            "titleafter link"
        );
        assert_eq!(clean_name("  alice\u{0}\u{7f} "), "alice");
    }

    #[test]
    fn lengths_are_capped() {
        let long = "x".repeat(2000);
        let cut = clean_text(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(clean_name(&"é".repeat(150)).chars().count(), MAX_NAME_CHARS);
        assert_eq!(clean_text("short"), "short");
    }
}
