//! Names people are known by: the one reserved for the server itself, and
//! the policy every chat name and user name passes (at the handshake and in
//! the admin commands alike).

/// The name lines from the server itself (its console, echo replies,
/// greetings) carry. Nobody else may take it.
pub const SERVER_NAME: &str = "server";

/// Longest name (chat name or user name), in characters after trimming.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty after trimming, or longer than [`MAX_NAME_CHARS`] characters.
    #[error("a name needs 1 to {MAX_NAME_CHARS} characters")]
    Length,
    /// A control character (a newline, a bell) anywhere in the name.
    #[error("a name may not contain control characters")]
    ControlCharacter,
    /// Whitespace inside a user name.
    #[error("a user name may not contain spaces")]
    Whitespace,
    /// `server` in any case, which would let a client speak as the server
    /// in chat.
    #[error("the name {SERVER_NAME:?} is reserved")]
    Reserved,
}

/// Checks a user name (`auth password`, `porter users add`) and returns it
/// trimmed: the rules of [`check_chat_name`], and no whitespace at all,
/// since user names are also typed on command lines.
///
/// # Errors
/// [`NameError`] naming the rule the name breaks.
pub fn check_user_name(raw: &str) -> Result<&str, NameError> {
    check_name(raw, NameKind::User)
}

/// Checks a chat name (`auth ip`) and returns it trimmed: 1 to
/// [`MAX_NAME_CHARS`] characters after trimming, no control characters, and
/// not `server` in any case. Spaces inside are fine.
///
/// # Errors
/// [`NameError`] naming the rule the name breaks.
pub fn check_chat_name(raw: &str) -> Result<&str, NameError> {
    check_name(raw, NameKind::Chat)
}

/// Checks a name given in an `answer` and returns it trimmed: the common
/// rules, and for [`NameKind::User`] no whitespace.
fn check_name(raw: &str, kind: NameKind) -> Result<&str, NameError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if kind == NameKind::User && name.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.eq_ignore_ascii_case(SERVER_NAME) {
        return Err(NameError::Reserved);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(check_name("  ada  ", NameKind::Chat), Ok("ada"));
        assert_eq!(
            check_name("Ada Lovelace", NameKind::Chat),
            Ok("Ada Lovelace")
        );
        assert!(check_name("Ada Lovelace", NameKind::User).is_err());
        assert!(check_name("   ", NameKind::Chat).is_err());
        assert!(check_name("", NameKind::User).is_err());
        let longest = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(check_name(&longest, NameKind::User), Ok(longest.as_str()));
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
}
