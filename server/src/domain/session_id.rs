//! A seat session's id, as an engine or the admin names it: not blank, at most 256
//! characters, nothing a terminal or the dashboard would show otherwise than it is.

/// Longest session id, in characters.
pub const MAX_SESSION_ID: usize = 256;

/// A session id, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

/// What is not a session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "session_id is required, at most {MAX_SESSION_ID} characters without control or format \
     characters"
)]
pub struct InvalidSessionId;

impl SessionId {
    /// Reads `id`. No control or Unicode format characters: a right-to-left override
    /// would make an id read differently on the dashboard than it is.
    pub fn parse(id: &str) -> Result<SessionId, InvalidSessionId> {
        let ok = !id.trim().is_empty()
            && id.chars().count() <= MAX_SESSION_ID
            && !id.chars().any(lic4es::log::is_invisible);
        if ok {
            Ok(SessionId(id.to_string()))
        } else {
            Err(InvalidSessionId)
        }
    }
}

parsed_text!(SessionId, InvalidSessionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_is_visible_text_of_bounded_length() {
        let long = "é".repeat(MAX_SESSION_ID);
        for good in ["ses-0123", "s", long.as_str(), "a b"] {
            assert_eq!(SessionId::parse(good).unwrap().as_str(), good);
        }
        let too_long = "a".repeat(MAX_SESSION_ID + 1);
        for bad in ["", "  ", "a\nb", "a\u{202e}b", "\u{7f}", too_long.as_str()] {
            assert_eq!(SessionId::parse(bad), Err(InvalidSessionId), "{bad:?}");
        }
        assert!(serde_json::from_str::<SessionId>("\"\"").is_err());
    }
}
