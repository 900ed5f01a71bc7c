//! Text from the other side, made safe to show to a person (PROTOCOL.md
//! section 2: "text from the other side is data, never terminal control").
//!
//! A `text`, a `from`, a user name, an error's or a `bye`'s text arrive
//! from someone else. Written to a terminal as they are, they could clear
//! the screen (`ESC [2J`), retitle the window (`ESC ]0;…BEL`), recolour
//! everything after them, move the cursor back over a line already shown
//! (`CR`), reverse the order of what follows (U+202E), or start a new line
//! that reads as someone else's (`LF`). Everything shown to a person goes
//! through [`printable`] or [`printable_lines`] first.
//!
//! # What is escaped, and how
//!
//! These characters are never written as they are:
//!
//! - the C0 controls U+0000–U+001F, DEL U+007F and the C1 controls
//!   U+0080–U+009F (ESC, BEL, CR, LF, TAB, NEL and the rest);
//! - the bidirectional controls: U+061C, U+200E, U+200F, U+202A–U+202E,
//!   U+2066–U+2069;
//! - the other invisible format characters (Unicode category Cf, such as
//!   U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF, U+00AD SOFT
//!   HYPHEN, the tag characters U+E0000–U+E007F), the line and paragraph
//!   separators U+2028 and U+2029, and the Hangul fillers U+115F, U+1160,
//!   U+3164 and U+FFA0, which show as nothing;
//! - except the joiners U+200C and U+200D between two characters that are
//!   neither ASCII nor escaped: there they build emoji sequences (👩‍💻) and
//!   the words of scripts that need them, and cannot hide inside an ASCII
//!   name.
//!
//! An escaped character is written the way Rust writes it in a string:
//! `\t`, `\r` and `\n` for TAB, CR and LF, and `\u{X}` for every other one,
//! `X` its code point in lowercase hexadecimal (ESC is `\u{1b}`, U+202E is
//! `\u{202e}`). A backslash typed by someone is left alone, so a literal
//! `\u{1b}` looks like an escaped ESC; both are harmless, which is the
//! point: nothing in the result is interpreted by a terminal.
//!
//! # Lines
//!
//! [`printable`] is for what must stay on one line (names, prompts,
//! error texts): a newline is `\n` there. [`printable_lines`] is for a
//! conversation line, where a newline is what its author meant: it is kept,
//! and every line after the first starts with an indent the caller chooses
//! (the client uses `  | `), so no line of the text can pass for a line
//! from another sender. `CR LF` counts as one newline; a lone `CR` is
//! `\r`, so `AAAA\rforged` cannot overwrite what came before it.
//!
//! Both borrow the text when nothing needs escaping, which is nearly
//! always; printable ASCII is checked a byte at a time.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The indent Porter's programs give every line of a multi-line text
/// after the first ([`printable_lines`]): the terminal client, the server's
/// console and its line mode all show a text of several lines the same way.
pub const CONTINUATION: &str = "  | ";

/// ZERO WIDTH NON-JOINER.
const ZWNJ: char = '\u{200C}';
/// ZERO WIDTH JOINER.
const ZWJ: char = '\u{200D}';

/// Whether `c` is always written escaped: a control, a bidirectional
/// control, or an invisible format character (see the module docs). The
/// joiners U+200C and U+200D are not among them: whether they are escaped
/// depends on their neighbours.
pub fn is_escaped(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // Bidirectional controls.
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // Other format characters (Cf), invisible or rendered as nothing.
        | '\u{ad}' | '\u{600}'..='\u{605}' | '\u{6dd}' | '\u{70f}' | '\u{890}' | '\u{891}'
        | '\u{8e2}' | '\u{180e}' | '\u{200b}' | '\u{2060}'..='\u{2064}' | '\u{206a}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{110bd}' | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}' | '\u{e0020}'..='\u{e007f}'
        // Line and paragraph separators: a new line to some displays.
        | '\u{2028}' | '\u{2029}'
        // Hangul fillers: letters that show as nothing.
        | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}'
    )
}

/// `text` for one line of a terminal: every character of the module docs'
/// list escaped, a newline included (as `\n`). Borrowed when nothing needs
/// escaping.
///
/// ```
/// use porter_wire::text::printable;
/// assert_eq!(printable("ada"), "ada");
/// assert_eq!(printable("\x1b[2Jhi"), r"\u{1b}[2Jhi");
/// assert_eq!(printable("AAAA\rforged"), r"AAAA\rforged");
/// assert_eq!(printable("a\u{202e}gnp.exe"), r"a\u{202e}gnp.exe");
/// ```
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, None)
}

/// `text` as a conversation line that may span several lines: newlines
/// (`LF` or `CR LF`) are kept, and each line after the first starts with
/// `indent`; everything else is as in [`printable`]. Borrowed when the text
/// is one line with nothing to escape.
///
/// ```
/// use porter_wire::text::printable_lines;
/// assert_eq!(
///     printable_lines("line1\nbob: fake line", "  | "),
///     "line1\n  | bob: fake line"
/// );
/// ```
pub fn printable_lines<'a>(text: &'a str, indent: &str) -> Cow<'a, str> {
    escape(text, Some(indent))
}

fn escape<'a>(text: &'a str, indent: Option<&str>) -> Cow<'a, str> {
    // Printable ASCII is the common case and needs no look at characters.
    // Everything before it is ASCII, so `start` is a character boundary.
    let Some(start) = text.bytes().position(|b| !(0x20..0x7f).contains(&b)) else {
        return Cow::Borrowed(text);
    };
    let mut chars = text[start..].char_indices().peekable();
    // The character before, as shown: `None` when it was escaped.
    let mut prev: Option<char> = text[..start].chars().next_back();
    let mut out: Option<String> = None;
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let kept = match c {
            '\n' | '\r' if indent.is_some() => None,
            ZWNJ | ZWJ => joins(prev, next).then_some(c),
            _ if is_escaped(c) => None,
            _ => Some(c),
        };
        match (kept, &mut out) {
            (Some(c), Some(out)) => out.push(c),
            (Some(_), None) => {}
            (None, out) => {
                let out = out.get_or_insert_with(|| {
                    let mut s = String::with_capacity(text.len() + 16);
                    s.push_str(&text[..start + i]);
                    s
                });
                match (c, indent) {
                    ('\n', Some(indent)) => {
                        out.push('\n');
                        out.push_str(indent);
                    }
                    // CR LF is one newline; the LF does the work.
                    ('\r', Some(_)) if next == Some('\n') => {}
                    _ => push_escaped(out, c),
                }
            }
        }
        prev = kept;
    }
    match out {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(text),
    }
}

/// Whether a joiner between `prev` and `next` (as shown) joins something:
/// both are characters shown as they are, neither ASCII nor a joiner.
fn joins(prev: Option<char>, next: Option<char>) -> bool {
    let visible = |c: Option<char>| {
        c.is_some_and(|c| !c.is_ascii() && !is_escaped(c) && !matches!(c, ZWNJ | ZWJ))
    };
    visible(prev) && visible(next)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        // Writing to a String cannot fail.
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(printable("hello, ada"), Cow::Borrowed(_)));
        assert!(matches!(printable("héllo 😀 日本"), Cow::Borrowed(_)));
        assert!(matches!(
            printable_lines("one line", "  | "),
            Cow::Borrowed(_)
        ));
        assert!(matches!(printable(""), Cow::Borrowed(_)));
    }

    #[test]
    fn terminal_control_sequences_are_shown_not_run() {
        assert_eq!(printable("\x1b[2J\x1b[H"), r"\u{1b}[2J\u{1b}[H");
        assert_eq!(printable("\x1b]0;TITLE\x07"), r"\u{1b}]0;TITLE\u{7}");
        assert_eq!(printable("\x1b[41m"), r"\u{1b}[41m");
        assert_eq!(printable("AAAA\rforged"), r"AAAA\rforged");
        assert_eq!(
            printable("a\tb\0c\u{7f}d\u{85}e\u{9b}"),
            r"a\tb\u{0}c\u{7f}d\u{85}e\u{9b}"
        );
    }

    #[test]
    fn bidirectional_controls_are_shown() {
        assert_eq!(printable("a\u{202e}gnp.exe"), r"a\u{202e}gnp.exe");
        for c in [
            '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{2066}', '\u{2069}',
        ] {
            assert_eq!(
                printable(&format!("x{c}y")),
                format!("x\\u{{{:x}}}y", u32::from(c))
            );
        }
    }

    #[test]
    fn invisible_characters_are_shown() {
        assert_eq!(printable("a\u{200b}da"), r"a\u{200b}da");
        assert_eq!(printable("\u{feff}ada"), r"\u{feff}ada");
        assert_eq!(printable("\u{3164}"), r"\u{3164}");
        assert_eq!(printable("hi\u{e0041}\u{e0042}"), r"hi\u{e0041}\u{e0042}");
        assert_eq!(printable("a\u{2028}b"), r"a\u{2028}b");
    }

    #[test]
    fn joiners_stay_inside_emoji_and_are_shown_next_to_ascii() {
        let coder = "👩\u{200d}💻";
        assert_eq!(printable(coder), coder);
        assert_eq!(printable("a\u{200d}da"), r"a\u{200d}da");
        assert_eq!(printable("\u{200d}👩"), r"\u{200d}👩");
        assert_eq!(printable("👩\u{200d}"), r"👩\u{200d}");
        assert_eq!(printable("👩\u{200d}\u{200d}💻"), r"👩\u{200d}\u{200d}💻");
    }

    #[test]
    fn one_line_text_shows_newlines_as_escapes() {
        assert_eq!(printable("line1\nbob: fake line"), r"line1\nbob: fake line");
        assert_eq!(printable("a\r\nb"), r"a\r\nb");
    }

    #[test]
    fn lines_after_the_first_are_indented() {
        assert_eq!(
            printable_lines("line1\nbob: fake line", "  | "),
            "line1\n  | bob: fake line"
        );
        assert_eq!(printable_lines("a\r\nb\r\n", "> "), "a\n> b\n> ");
        assert_eq!(printable_lines("AAAA\rforged", "> "), r"AAAA\rforged");
        assert_eq!(printable_lines("x\n\x1b[2Jy", "  | "), "x\n  | \\u{1b}[2Jy");
    }

    #[test]
    fn text_before_the_first_escape_is_kept_whole() {
        assert_eq!(printable("héllo\x1b"), r"héllo\u{1b}");
        assert_eq!(printable("日本\u{202e}"), r"日本\u{202e}");
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn nothing_escaped_survives(text in any::<String>()) {
                let shown = printable(&text);
                let chars: Vec<char> = shown.chars().collect();
                for (i, &c) in chars.iter().enumerate() {
                    prop_assert!(!is_escaped(c), "{c:?} in {shown:?}");
                    if matches!(c, ZWNJ | ZWJ) {
                        let prev = i.checked_sub(1).map(|p| chars[p]);
                        prop_assert!(joins(prev, chars.get(i + 1).copied()), "{shown:?}");
                    }
                }
            }

            #[test]
            fn borrowed_exactly_when_nothing_changes(text in any::<String>()) {
                let shown = printable(&text);
                prop_assert_eq!(matches!(shown, Cow::Borrowed(_)), shown == text);
            }

            #[test]
            fn each_line_after_the_first_starts_with_the_indent(text in any::<String>()) {
                let shown = printable_lines(&text, "  | ");
                for line in shown.split('\n').skip(1) {
                    prop_assert!(line.starts_with("  | "), "{shown:?}");
                }
                prop_assert!(!shown.contains('\r'));
            }
        }
    }
}
