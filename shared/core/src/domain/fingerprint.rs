//! The release fingerprint: one SHA-256 over a canonical form of everything that decides what a
//! version runs (images by digest, every model-data object's key, size and checksum, the
//! environment, the inference settings). Computed at promotion, recomputed before every stage
//! deployment: equal fingerprints mean the same bytes run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseFingerprint(String);

const PREFIX: &str = "sha256:";

impl ReleaseFingerprint {
    /// The fingerprint of a canonical form's bytes.
    pub fn of(canonical: &[u8]) -> Self {
        Self(format!("{PREFIX}{}", super::naming::hex_sha256(canonical)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first hex digits, enough for a person to compare two fingerprints at a glance.
    pub fn short(&self) -> &str {
        &self.0[PREFIX.len()..PREFIX.len() + 12]
    }
}

impl fmt::Display for ReleaseFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for ReleaseFingerprint {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let hex = raw.strip_prefix(PREFIX).ok_or_else(|| format!("a release fingerprint starts with {PREFIX}"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("a release fingerprint is {PREFIX} and 64 lowercase hex digits, not `{}`", super::ids::truncated(raw)));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl TryFrom<String> for ReleaseFingerprint {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        raw.parse()
    }
}

impl From<ReleaseFingerprint> for String {
    fn from(fingerprint: ReleaseFingerprint) -> String {
        fingerprint.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_parses_back_and_refuses_anything_else() {
        let fingerprint = ReleaseFingerprint::of(b"canonical");
        assert_eq!(fingerprint.as_str().parse::<ReleaseFingerprint>().unwrap(), fingerprint);
        assert_eq!(fingerprint.short().len(), 12);
        for bad in ["", "sha256:", "md5:00", &fingerprint.as_str().to_uppercase(), &format!("{fingerprint}0")] {
            assert!(bad.parse::<ReleaseFingerprint>().is_err(), "{bad}");
        }
    }
}
