//! A license id: 1 to 128 of `A-Z a-z 0-9 . _ -`. Ids end up in tokens, URLs, metrics
//! labels and Redis keys, so nothing else is let in.

/// Longest license id.
pub const MAX_LICENSE_ID: usize = 128;

/// A license id, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LicenseId(String);

/// What is not a license id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("license id must be 1 to {MAX_LICENSE_ID} characters of A-Z, a-z, 0-9, `.`, `_` and `-`")]
pub struct InvalidLicenseId;

impl LicenseId {
    /// Reads `id`.
    pub fn parse(id: &str) -> Result<LicenseId, InvalidLicenseId> {
        let ok = !id.is_empty()
            && id.len() <= MAX_LICENSE_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(LicenseId(id.to_string()))
        } else {
            Err(InvalidLicenseId)
        }
    }

    /// The id, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

parsed_text!(LicenseId, InvalidLicenseId);

impl AsRef<str> for LicenseId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for LicenseId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_alphabet_and_length_and_nothing_else() {
        let long = "a".repeat(MAX_LICENSE_ID);
        for good in ["org-acme", "a", "A.b_c-9", long.as_str()] {
            assert_eq!(LicenseId::parse(good).unwrap().as_str(), good);
        }
        let too_long = "a".repeat(MAX_LICENSE_ID + 1);
        for bad in ["", "a b", "a/b", "é", "a\n", too_long.as_str(), "{x}"] {
            assert_eq!(LicenseId::parse(bad), Err(InvalidLicenseId), "{bad:?}");
        }
        assert!(serde_json::from_str::<LicenseId>("\"org 1\"").is_err());
        assert_eq!(
            serde_json::from_str::<LicenseId>("\"org-1\"")
                .unwrap()
                .as_str(),
            "org-1"
        );
    }
}
