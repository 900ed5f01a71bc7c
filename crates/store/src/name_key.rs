//! The comparison key of a name: what two names must differ in to both exist. The
//! policy is documented on [`name_key`], the one public item, so that it shows in the
//! crate's docs.

use unicode_normalization::UnicodeNormalization as _;

/// Rounds of skeleton-and-lower-case in [`name_key`], at most. One round settles every name
/// seen in practice; the bound only guarantees that computing a key ends.
const MAX_ROUNDS: usize = 4;

/// The comparison key of `name`: equal keys mean names that look alike, which the store
/// never lets exist twice.
///
/// The threat: someone registers `Bob`, `bоb` (with a Cyrillic `о`) or `bob` followed by an
/// invisible character beside an existing `bob`, and is taken for them in the room. The store
/// therefore keeps, next to every user name and every name given from an address, this key,
/// on which it is unique.
///
/// The key is the case-folded confusable skeleton of Unicode Technical Standard 39:
///
/// 1. NFC, then lower case (Unicode's full `toLowerCase`, as RFC 8265's UsernameCaseMapped
///    profile maps case), so that `Bob` and `bob` meet;
/// 2. UTS 39's `skeleton` (NFD, default-ignorable code points dropped, every character
///    replaced by its confusable prototype, NFD again), so that `bоb` and `bob` meet;
/// 3. lower case again, since some prototypes are capitals (`0` becomes `O`), and then
///    steps 2 and 3 once more until nothing changes (at most four rounds), so that
///    a prototype of a prototype still meets its look-alikes.
///
/// The key is never shown, only compared: it may read oddly (`m` and `rn` share one).
/// Lookups stay exact: a user logs in with their name as stored, not with a look-alike.
///
/// The key depends on the Unicode data of `unicode-security`; a new version of that crate may
/// move a few keys. Keys already stored are not recomputed (the SQLite backend's backfill at
/// open only fills in missing ones).
pub fn name_key(name: &str) -> String {
    let mut key = name.nfc().collect::<String>().to_lowercase();
    for _ in 0..MAX_ROUNDS {
        let next = unicode_security::skeleton(&key)
            .collect::<String>()
            .to_lowercase();
        if next == key {
            break;
        }
        key = next;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::name_key;

    #[test]
    fn case_variants_share_a_key() {
        assert_eq!(name_key("bob"), name_key("Bob"));
        assert_eq!(name_key("bob"), name_key("BOB"));
        assert_eq!(name_key("server"), name_key("SeRvEr"));
    }

    #[test]
    fn look_alikes_from_other_scripts_share_a_key() {
        // Cyrillic о (U+043E) and ѕ (U+0455), Greek ο (U+03BF).
        assert_eq!(name_key("bob"), name_key("b\u{43e}b"));
        assert_eq!(name_key("server"), name_key("\u{455}erver"));
        assert_eq!(name_key("bob"), name_key("b\u{3bf}b"));
        // Fullwidth letters.
        assert_eq!(name_key("bob"), name_key("\u{ff42}\u{ff4f}\u{ff42}"));
    }

    #[test]
    fn invisible_characters_do_not_change_the_key() {
        for hidden in ["\u{200b}", "\u{2060}", "\u{feff}", "\u{e0041}", "\u{ad}"] {
            assert_eq!(
                name_key("bob"),
                name_key(&format!("b{hidden}ob")),
                "{hidden:?}"
            );
        }
    }

    #[test]
    fn composed_and_decomposed_forms_share_a_key() {
        assert_eq!(name_key("Ren\u{e9}"), name_key("Rene\u{301}"));
    }

    #[test]
    fn a_digit_that_looks_like_a_capital_meets_the_lower_case_letter() {
        assert_eq!(name_key("b0b"), name_key("bob"));
        assert_eq!(name_key("B0B"), name_key("BOB"));
    }

    #[test]
    fn different_names_keep_different_keys() {
        assert_ne!(name_key("bob"), name_key("rob"));
        assert_ne!(name_key("ada"), name_key("ada lovelace"));
        assert_ne!(name_key("server"), name_key("servers"));
    }
}
