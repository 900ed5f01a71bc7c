//! Names people are known by: the one reserved for the server itself, and the policy every
//! chat name and user name passes (at the handshake and in the admin commands alike).
//!
//! The threat is a name that passes for someone else's, or that hides something:
//! - a look-alike (`Bob` or `bоb` with a Cyrillic `о` beside `bob`): the store refuses it, since
//!   names are unique on their [`porter_store::name_key`]; here only [`SERVER_NAME`] is guarded
//!   the same way;
//! - invisible characters (`bob` + U+200B ZERO WIDTH SPACE, tag characters), which make two
//!   names that print the same;
//! - bidirectional controls (`a` + U+202E + `gnp.exe` shows as `aexe.png`) and line separators,
//!   which rearrange or break what a terminal or a log shows around the name;
//! - code points nobody can see yet (unassigned, private use).
//!
//! The policy, rule by rule, is on [`NameError`], whose variants are its refusals.
//!
//! A refusal is a [`NameError`] whose text names the rule and never repeats the name.

use std::borrow::Cow;

use precis_profiles::UsernameCasePreserved;
use precis_profiles::precis_core::profile::Profile as _;
use precis_profiles::precis_core::{DerivedPropertyValue, Error as PrecisError};
use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// The name lines from the server itself (its console, echo replies,
/// greetings) carry. Nobody else may take it.
pub const SERVER_NAME: &str = "server";

/// Longest name (chat name or user name), in characters after trimming and normalising.
pub const MAX_NAME_CHARS: usize = 32;

/// Which names a policy accepts besides the common rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    /// A chat name given from an address: spaces inside are fine.
    Chat,
    /// A user name: also typed on command lines (`porter users remove`), so
    /// no whitespace at all.
    User,
}

/// Why a name is refused. The text is safe to send to the client: it names
/// the rule, not the name.
///
/// The policy, for both kinds of name, in this order (the first rule broken is reported):
/// 1. leading and trailing whitespace is trimmed; nothing may be left empty;
/// 2. refused anywhere: control characters (Cc), bidirectional controls (Bidi_Control),
///    default-ignorable code points (Default_Ignorable_Code_Point: zero-width characters,
///    joiners, variation selectors, tags, U+FEFF...), line and paragraph separators (Zl, Zp) and
///    spaces other than U+0020 (Zs), unassigned and private-use code points (Cn, Co);
/// 3. a **user name** (`--auth password`, `porter users add`) has no space at all and then
///    follows RFC 8265's UsernameCasePreserved profile (the `precis-profiles` crate): fullwidth
///    forms become their usual width, only the PRECIS IdentifierClass is allowed (letters and
///    digits of any script, combining marks, printable ASCII; no symbols, no compatibility
///    characters), NFC, and the bidi rule of RFC 5893. Case is kept as typed; UsernameCaseMapped's
///    case mapping is the first step of the name key, so comparison is that profile's. The
///    PRECIS tables are Unicode 6.3's: a character added to Unicode since (a recent emoji or
///    ideograph) is refused in a user name ([`NameError::UnicodeVersion`]);
/// 4. a **chat name** (`--auth ip`) keeps inner spaces (runs of them become one) and is NFC;
///    any other visible character (symbols, emoji) is fine;
/// 5. 1 to [`MAX_NAME_CHARS`] characters, counted after all of the above;
/// 6. not [`SERVER_NAME`], nor anything with its name key (`SERVER`, `ѕerver` with a
///    Cyrillic `ѕ`).
///
/// A look-alike of someone else's name passes this policy: the store refuses it, since names
/// are unique on their [`porter_store::name_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty after trimming, or longer than [`MAX_NAME_CHARS`] characters.
    #[error("a name needs 1 to {MAX_NAME_CHARS} characters")]
    Length,
    /// A control character (a newline, a bell) anywhere in the name.
    #[error("a name may not contain control characters")]
    ControlCharacter,
    /// A bidirectional control (U+202E RIGHT-TO-LEFT OVERRIDE, U+2066 LEFT-TO-RIGHT
    /// ISOLATE...), which reorders how the text around it is shown.
    #[error("a name may not contain bidirectional controls")]
    BidiControl,
    /// A default-ignorable code point: zero-width spaces and joiners, U+2060 WORD JOINER,
    /// U+FEFF, variation selectors, tag characters (U+E0000 to U+E007F)...
    #[error("a name may not contain invisible characters (zero-width characters, tags)")]
    Invisible,
    /// A line or paragraph separator (U+2028, U+2029), or a space other than U+0020 (in a
    /// chat name; in a user name every space is [`NameError::Whitespace`]).
    #[error("a name may not contain line or paragraph separators or unusual spaces")]
    Separator,
    /// Whitespace inside a user name.
    #[error("a user name may not contain spaces")]
    Whitespace,
    /// A code point Unicode has not assigned, or one for private use.
    #[error("a name may not contain unassigned or private-use code points")]
    Unassigned,
    /// A user name character Unicode assigned after version 6.3, the version of the PRECIS
    /// tables RFC 8265 is checked with (an emoji such as U+1F980, a recent ideograph).
    #[error("a user name may not contain characters added to Unicode after version 6.3")]
    UnicodeVersion,
    /// A user name character outside RFC 8265's IdentifierClass: a symbol, an emoji, a
    /// compatibility character.
    #[error("a user name may contain only letters, digits and printable ASCII characters")]
    Disallowed,
    /// A user name with right-to-left characters that breaks the bidi rule of RFC 5893 (for
    /// example, right-to-left letters mixed with left-to-right ones).
    #[error("a user name with right-to-left letters must follow the bidi rule of RFC 5893")]
    Direction,
    /// `server` in any case or any look-alike form, which would let a client speak as the
    /// server in chat.
    #[error("the name {SERVER_NAME:?} is reserved")]
    Reserved,
}

/// Checks a user name (`auth password`, `porter users add`) against the policy (see
/// [`NameError`]) and returns it trimmed and normalised: the common rules, no
/// whitespace at all (user names are also typed on command lines), and RFC 8265.
///
/// # Errors
/// [`NameError`] naming the rule the name breaks.
pub fn check_user_name(raw: &str) -> Result<String, NameError> {
    check_name(raw, NameKind::User)
}

/// Checks a chat name (`auth ip`) against the policy (see [`NameError`]) and returns
/// it trimmed and normalised: 1 to [`MAX_NAME_CHARS`] characters, nothing invisible, no
/// control, no separator but the plain space (runs of which become one), and not `server` or
/// a look-alike of it.
///
/// # Errors
/// [`NameError`] naming the rule the name breaks.
pub fn check_chat_name(raw: &str) -> Result<String, NameError> {
    check_name(raw, NameKind::Chat)
}

/// Whether `c` is refused in every name because it cannot be seen, or changes how the text
/// around it is shown: a control, a bidirectional control, a default-ignorable code point, a
/// separator other than U+0020, an unassigned or private-use code point.
///
/// For showing names stored before this policy, which may hold such characters: the admin
/// commands print them escaped.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || is_bidi_control(c)
        || is_default_ignorable(c)
        || is_odd_separator(c)
        || is_unassigned(c)
}

/// A test a refused character passes.
type CharRule = fn(char) -> bool;

/// The rules every name passes before its kind's own, in the order they are reported.
const COMMON_RULES: [(CharRule, NameError); 3] = [
    (char::is_control, NameError::ControlCharacter),
    (is_bidi_control, NameError::BidiControl),
    (is_default_ignorable, NameError::Invisible),
];

fn check_name(raw: &str, kind: NameKind) -> Result<String, NameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NameError::Length);
    }
    for (refused, error) in COMMON_RULES {
        if trimmed.chars().any(refused) {
            return Err(error);
        }
    }
    if kind == NameKind::User && trimmed.chars().any(|c| c == ' ' || is_space_separator(c)) {
        return Err(NameError::Whitespace);
    }
    if trimmed.chars().any(is_odd_separator) {
        return Err(NameError::Separator);
    }
    if trimmed.chars().any(is_unassigned) {
        return Err(NameError::Unassigned);
    }
    let name = match kind {
        NameKind::User => user_name_profile(trimmed)?,
        NameKind::Chat => collapse_spaces(&trimmed.nfc().collect::<String>()),
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    if porter_store::name_key(&name) == porter_store::name_key(SERVER_NAME) {
        return Err(NameError::Reserved);
    }
    Ok(name)
}

/// RFC 8265's UsernameCasePreserved enforcement: width mapping, IdentifierClass, NFC, and
/// the bidi rule.
fn user_name_profile(name: &str) -> Result<String, NameError> {
    match UsernameCasePreserved::new().enforce(name) {
        Ok(name) => Ok(name.into_owned()),
        // Truly unassigned code points were refused before: this one is newer than the
        // PRECIS tables.
        Err(PrecisError::BadCodepoint(info))
            if info.property == DerivedPropertyValue::Unassigned =>
        {
            Err(NameError::UnicodeVersion)
        }
        // The profile's only other refusal of a non-empty name is the bidi rule.
        Err(PrecisError::Invalid) => Err(NameError::Direction),
        Err(PrecisError::BadCodepoint(_) | PrecisError::Unexpected(_)) => {
            Err(NameError::Disallowed)
        }
    }
}

/// `name` with every run of spaces inside it made one space (RFC 8266's rule for
/// nicknames), so that `Ada  Lovelace` does not stand beside `Ada Lovelace`.
fn collapse_spaces(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut after_space = false;
    for c in name.chars() {
        if c == ' ' && after_space {
            continue;
        }
        after_space = c == ' ';
        out.push(c);
    }
    out
}

/// Unicode's Bidi_Control property (PropList.txt): the marks, embeddings, overrides and
/// isolates that reorder text.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, stable since
/// Unicode 6.1 apart from the reserved ranges it already covers): what a renderer shows as
/// nothing at all.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fff8}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// A space separator (Zs) other than U+0020: no-break, en, em, ideographic spaces...
fn is_space_separator(c: char) -> bool {
    c != ' ' && c.general_category() == GeneralCategory::SpaceSeparator
}

/// A separator no name may hold: a line or paragraph separator, or a space other than U+0020.
fn is_odd_separator(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
    ) || is_space_separator(c)
}

/// Not assigned by Unicode (as `unicode-properties` knows it), or for private use: nobody
/// can tell what it shows as.
fn is_unassigned(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Unassigned | GeneralCategory::PrivateUse | GeneralCategory::Surrogate
    )
}

/// `name` as it can be shown safely: characters that [`is_hidden`] (and the backslash, so
/// that an escape cannot be faked) are written as Rust escapes, `bob\u{200b}`; the rest is
/// kept as is.
pub fn printable(name: &str) -> Cow<'_, str> {
    if !name.chars().any(|c| c == '\\' || is_hidden(c)) {
        return Cow::Borrowed(name);
    }
    let mut shown = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if c == '\\' {
            shown.push_str("\\\\");
        } else if is_hidden(c) {
            shown.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(check_name("  ada  ", NameKind::Chat).as_deref(), Ok("ada"));
        assert_eq!(
            check_name("Ada Lovelace", NameKind::Chat).as_deref(),
            Ok("Ada Lovelace")
        );
        assert!(check_name("Ada Lovelace", NameKind::User).is_err());
        assert!(check_name("   ", NameKind::Chat).is_err());
        assert!(check_name("", NameKind::User).is_err());
        let longest = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(check_name(&longest, NameKind::User), Ok(longest.clone()));
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS + 1), NameKind::User).is_err());
        assert!(check_name("a\u{7}b", NameKind::Chat).is_err());
        assert!(check_name("a\nb", NameKind::Chat).is_err());
    }

    #[test]
    fn nobody_may_be_called_server() {
        assert!(check_name("server", NameKind::Chat).is_err());
        assert!(check_name(" SERVER ", NameKind::User).is_err());
        assert!(check_name("servers", NameKind::User).is_ok());
    }

    /// Both kinds of name, each refused for the one rule the table names.
    #[test]
    fn hidden_and_reordering_characters_are_refused_by_name() {
        use NameError::*;
        let refused = [
            ("bob\u{200b}", Invisible),  // ZERO WIDTH SPACE
            ("b\u{2060}ob", Invisible),  // WORD JOINER
            ("\u{feff}bob", Invisible),  // BYTE ORDER MARK
            ("bob\u{e0041}", Invisible), // TAG LATIN CAPITAL LETTER A
            ("bo\u{200d}b", Invisible),  // ZERO WIDTH JOINER
            ("bob\u{fe0f}", Invisible),  // VARIATION SELECTOR-16
            ("bob\u{ad}", Invisible),    // SOFT HYPHEN
            ("ser\u{200b}ver", Invisible),
            ("a\u{202e}gnp.exe", BidiControl), // RIGHT-TO-LEFT OVERRIDE
            ("a\u{2066}b", BidiControl),       // LEFT-TO-RIGHT ISOLATE
            ("a\u{200f}b", BidiControl),       // RIGHT-TO-LEFT MARK
            ("a\u{2028}b", Separator),         // LINE SEPARATOR
            ("a\u{2029}b", Separator),         // PARAGRAPH SEPARATOR
            ("a\u{1}b", ControlCharacter),
            ("a\u{85}b", ControlCharacter), // NEXT LINE
            ("a\u{378}b", Unassigned),
            ("a\u{e000}b", Unassigned), // private use
            ("\u{10ffff}", Unassigned), // a noncharacter
            ("\u{455}erver", Reserved), // Cyrillic ѕ
            ("SERVER", Reserved),
            ("\u{ff53}erver", Reserved), // fullwidth s
        ];
        for kind in [NameKind::Chat, NameKind::User] {
            for (name, error) in refused {
                assert_eq!(check_name(name, kind), Err(error), "{kind:?} {name:?}");
            }
        }
    }

    #[test]
    fn chat_names_keep_plain_spaces_only() {
        assert_eq!(
            check_chat_name("Ada  Lovelace").as_deref(),
            Ok("Ada Lovelace")
        );
        assert_eq!(check_chat_name("a\u{a0}b"), Err(NameError::Separator)); // NO-BREAK SPACE
        assert_eq!(check_chat_name("a\u{3000}b"), Err(NameError::Separator)); // IDEOGRAPHIC
        assert_eq!(check_chat_name("a\tb"), Err(NameError::ControlCharacter));
        assert_eq!(check_chat_name("ada 🦀").as_deref(), Ok("ada 🦀"));
    }

    #[test]
    fn user_names_have_no_space_of_any_kind() {
        for name in ["ada lovelace", "ada\u{a0}lovelace", "ada\u{2003}lovelace"] {
            assert_eq!(
                check_user_name(name),
                Err(NameError::Whitespace),
                "{name:?}"
            );
        }
        assert_eq!(check_user_name("ada\u{2028}x"), Err(NameError::Separator));
    }

    #[test]
    fn names_are_stored_in_nfc() {
        let composed = "Ren\u{e9}";
        for kind in [NameKind::Chat, NameKind::User] {
            assert_eq!(
                check_name("Rene\u{301}", kind).as_deref(),
                Ok(composed),
                "{kind:?}"
            );
            assert_eq!(
                check_name(composed, kind).as_deref(),
                Ok(composed),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn user_names_follow_rfc_8265() {
        // Case is kept; fullwidth becomes the usual width.
        assert_eq!(check_user_name("Bob").as_deref(), Ok("Bob"));
        assert_eq!(check_user_name("\u{ff22}ob").as_deref(), Ok("Bob"));
        for name in [
            "ada_l",
            "ada.l",
            "ada-1",
            "ada@example",
            "Ωμέγα",
            "пётр",
            "李",
        ] {
            assert!(check_user_name(name).is_ok(), "{name:?}");
        }
        // Symbols and compatibility characters are outside IdentifierClass.
        for name in ["ada\u{2603}", "ada♥", "\u{fb01}x", "x\u{2075}"] {
            assert_eq!(
                check_user_name(name),
                Err(NameError::Disallowed),
                "{name:?}"
            );
        }
        // PRECIS knows Unicode 6.3: what came later is refused, and said so.
        assert_eq!(check_user_name("ada🦀"), Err(NameError::UnicodeVersion));
        // Right-to-left letters mixed with left-to-right ones break the bidi rule.
        assert_eq!(check_user_name("\u{5d0}a"), Err(NameError::Direction));
        assert!(check_user_name("\u{5d0}\u{5d1}").is_ok());
    }

    /// Look-alikes of another name pass the policy: the store refuses them, on their key.
    #[test]
    fn look_alikes_pass_the_policy_and_share_the_key() {
        let key = porter_store::name_key("bob");
        for name in ["Bob", "b\u{43e}b", "BOB"] {
            let checked = check_chat_name(name).unwrap();
            assert_eq!(porter_store::name_key(&checked), key, "{name:?}");
        }
    }

    #[test]
    fn errors_never_repeat_the_name() {
        let name = "x\u{202e}evil";
        let text = check_chat_name(name).unwrap_err().to_string();
        assert!(!text.contains("evil"), "{text}");
    }

    #[test]
    fn printable_escapes_hidden_characters_and_backslashes() {
        assert_eq!(printable("bob"), "bob");
        assert_eq!(printable("Ada Lovelace"), "Ada Lovelace");
        assert_eq!(printable("bob\u{200b}"), "bob\\u{200b}");
        assert_eq!(printable("a\u{202e}gnp.exe"), "a\\u{202e}gnp.exe");
        assert_eq!(printable("a\nb"), "a\\u{a}b");
        assert_eq!(printable("a\\u{200b}"), "a\\\\u{200b}");
        assert_eq!(
            printable("b\u{43e}b"),
            "b\u{43e}b",
            "visible look-alikes stay"
        );
    }
}
