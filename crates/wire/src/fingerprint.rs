//! A server's certificate fingerprint, as section 1a of the protocol
//! writes it: `SHA256:` then the SHA-256 of the certificate's DER encoding
//! in unpadded standard base64, the way OpenSSH writes key fingerprints.
//!
//! Clients that cannot verify a server through a certificate authority
//! pin this value (trust on first use), so parsing is strict: one spelling
//! per certificate, and nothing that merely looks like one is accepted.

use std::fmt;
use std::str::FromStr;

use base64ct::{Base64Unpadded, Encoding};
use sha2::{Digest, Sha256};

/// The prefix every fingerprint starts with.
const PREFIX: &str = "SHA256:";

/// The SHA-256 digest of a certificate's DER encoding.
///
/// `Display` and `FromStr` use the protocol's spelling
/// (`SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the certificate whose DER encoding is `der`.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The digest itself.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 43];
        let encoded = Base64Unpadded::encode(&self.0, &mut buf).map_err(|_| fmt::Error)?;
        write!(f, "{PREFIX}{encoded}")
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A text that is not a fingerprint as section 1a writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a certificate fingerprint: expected SHA256: and 43 characters of unpadded base64, as `porter fingerprint` prints"
)]
pub struct ParseFingerprintError;

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Fingerprint, ParseFingerprintError> {
        let digest = s.trim().strip_prefix(PREFIX).ok_or(ParseFingerprintError)?;
        let mut out = [0u8; 32];
        let decoded =
            Base64Unpadded::decode(digest, &mut out).map_err(|_| ParseFingerprintError)?;
        if decoded.len() != 32 {
            return Err(ParseFingerprintError);
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_as_openssh_does() {
        // The SHA-256 of the empty input, which `ssh-keygen -l` would print
        // for an empty key blob, and Python's recipe in section 1a gives.
        let empty = Fingerprint::of_der(b"");
        assert_eq!(
            empty.to_string(),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(empty.to_string().parse::<Fingerprint>(), Ok(empty));
    }

    #[test]
    fn only_the_exact_spelling_parses() {
        let good = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        assert!(good.parse::<Fingerprint>().is_ok());
        for bad in [
            "",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "SHA256:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFUAA",
        ] {
            assert_eq!(
                bad.parse::<Fingerprint>(),
                Err(ParseFingerprintError),
                "{bad:?}"
            );
        }
    }
}
