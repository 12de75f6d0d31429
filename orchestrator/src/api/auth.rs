//! The bearer token of the mutating endpoints, compared in constant time.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// Why a request may not change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// The daemon has no token: mutating endpoints are closed, never open.
    NoTokenConfigured,
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that is not the configured one.
    Wrong,
}

/// The MAC of `token` under `key`: both sides of the comparison are fixed-length MACs, so
/// neither the token's length nor the position of the first differing byte shows in the time
/// the comparison takes.
fn mac(key: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(b"ringmaster api bearer token");
    Some(mac)
}

/// Whether `presented` is `expected`, in constant time: the presented token's MAC is checked
/// with `hmac`'s `verify_slice` (a constant-time comparison, from `subtle`) against the
/// expected token's MAC over the same message.
fn same(expected: &str, presented: &str) -> bool {
    let (Some(theirs), Some(ours)) = (mac(presented.as_bytes()), mac(expected.as_bytes())) else {
        return false;
    };
    ours.verify_slice(&theirs.finalize().into_bytes()).is_ok()
}

/// Check the request's `Authorization` header against the configured token.
pub(crate) fn check(token: Option<&Secret>, headers: &HeaderMap) -> Result<(), Denied> {
    let Some(token) = token else {
        return Err(Denied::NoTokenConfigured);
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(Denied::Missing)?;
    if same(token.expose(), presented) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn only_the_same_token_matches() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cre"));
        assert!(!same("s3cret", "s3cret "));
        assert!(!same("s3cret", ""));
        assert!(!same("s3cret", "S3cret"));
    }
}
