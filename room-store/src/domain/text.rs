//! Text fields people read (titles, comments, poll questions and options,
//! uids): no control characters and no bidirectional overrides or isolates,
//! which can hide or reorder what a reader sees ("Trojan Source").

/// Bidi embeddings and overrides (U+202A–U+202E) and isolates
/// (U+2066–U+2069).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why a text field was refused: the field and the offending code point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must not contain control or bidi-override characters (found U+{code:04X})")]
pub struct BadText {
    /// The field's name as the client knows it.
    pub field: &'static str,
    /// The first offending character.
    pub code: u32,
}

/// How much whitespace control a field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: no control character at all.
    One,
    /// Line breaks (`\n`) and tabs allowed (comments).
    Many,
}

/// Check `text` of `field`.
pub fn check(field: &'static str, text: &str, lines: Lines) -> Result<(), BadText> {
    let allowed = |c: char| lines == Lines::Many && matches!(c, '\n' | '\t');
    match text
        .chars()
        .find(|&c| (c.is_control() && !allowed(c)) || is_bidi_control(c))
    {
        Some(c) => Err(BadText {
            field,
            code: u32::from(c),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_refused_and_plain_text_is_not() {
        for good in ["Late show", "夜の部 🎉", "café — naïve", "עברית", "مرحبا"]
        {
            assert_eq!(check("title", good, Lines::One), Ok(()), "{good}");
        }
        let bad = [
            ("evil\u{202E}txt.exe", 0x202E),
            ("a\u{2066}b", 0x2066),
            ("a\u{2069}", 0x2069),
            ("a\u{202A}", 0x202A),
            ("bell\u{7}", 0x7),
            ("nul\0", 0),
            ("esc\u{1b}[31m", 0x1B),
            ("two\nlines", 0x0A),
            ("c1\u{85}", 0x85),
        ];
        for (text, code) in bad {
            assert_eq!(
                check("title", text, Lines::One),
                Err(BadText {
                    field: "title",
                    code
                }),
                "{text:?}"
            );
        }
        assert_eq!(
            check("text", "line one\nline two\ttab", Lines::Many),
            Ok(())
        );
        assert!(check("text", "a\u{202E}b", Lines::Many).is_err());
        assert!(check("text", "a\rb", Lines::Many).is_err());
        let err = check("question", "x\u{202E}", Lines::One).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "question must not contain control or bidi-override characters (found U+202E)"
        );
    }
}
