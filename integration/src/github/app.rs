//! GitHub App authentication, as GitHub documents it: the App signs a short-lived JWT (RS256,
//! `iss` = the App id, `exp` at most ten minutes ahead) with its private key, trades it at
//! `POST /app/installations/{id}/access_tokens` for an installation token (`ghs_...`), and uses
//! that token for the REST API until its `expires_at`.
//!
//! The fake keeps one installation, on every repository it serves, and the set of tokens it
//! issued with their expiry.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// GitHub's answer to a JWT it cannot use (bad signature, wrong `iss`, expired, missing).
pub(crate) const JWT_REJECTED: &str = "A JSON web token could not be decoded";

/// GitHub's answer to a JWT whose `exp` is more than ten minutes ahead.
pub(crate) const JWT_TOO_LONG: &str = "'Expiration time' claim ('exp') is too far in the future";

/// GitHub's answer to an unknown or expired token.
pub(crate) const BAD_CREDENTIALS: &str = "Bad credentials";

/// The longest JWT GitHub accepts: `exp` no more than ten minutes ahead.
const MAX_JWT_LIFETIME_SECS: i64 = 600;

/// Length of the random-looking part of an installation token (as on GitHub).
const TOKEN_CHARS: usize = 36;

/// The prefix of installation tokens.
pub(crate) const INSTALLATION_TOKEN_PREFIX: &str = "ghs_";

/// The App registered with [`super::FakeGitHub::enable_app`].
#[derive(Debug)]
pub(crate) struct App {
    pub id: u64,
    key: DecodingKey,
    pub installation_id: u64,
    lifetime: TimeDelta,
    /// Installation tokens not yet forgotten, with their expiry.
    tokens: BTreeMap<String, DateTime<Utc>>,
    /// Installation tokens issued since the App was enabled.
    pub issued: usize,
}

/// The claims the fake reads; `iss` may be a number or a string (GitHub accepts both).
#[derive(Debug, Deserialize)]
struct Claims {
    iss: Value,
    exp: i64,
}

impl App {
    /// Fails when `public_key_pem` is not an RSA public key in PEM.
    pub fn new(
        id: u64,
        public_key_pem: &str,
        installation_id: u64,
        token_lifetime: Duration,
    ) -> Result<App, String> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .map_err(|e| format!("the App's public key is not an RSA PEM key: {e}"))?;
        Ok(App {
            id,
            key,
            installation_id,
            lifetime: TimeDelta::from_std(token_lifetime).unwrap_or(TimeDelta::MAX),
            tokens: BTreeMap::new(),
            issued: 0,
        })
    }

    /// Checks `Authorization: Bearer <JWT>`: an RS256 signature by the App's key, `iss` = the
    /// App id, `exp` in the future and at most ten minutes ahead. `Err` is the 401 message.
    pub fn verify_jwt(
        &self,
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), &'static str> {
        let jwt = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(JWT_REJECTED)?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Time claims are checked below against `now`, not the library's clock; `iss` may be a
        // number, which the library's own issuer check does not read.
        validation.validate_exp = false;
        validation.required_spec_claims = HashSet::new();
        let claims = jsonwebtoken::decode::<Claims>(jwt, &self.key, &validation)
            .map_err(|_| JWT_REJECTED)?
            .claims;
        let iss_matches = match &claims.iss {
            Value::Number(n) => n.as_u64() == Some(self.id),
            Value::String(s) => s.trim() == self.id.to_string(),
            _ => false,
        };
        if !iss_matches || claims.exp <= now.timestamp() {
            return Err(JWT_REJECTED);
        }
        if claims.exp > now.timestamp() + MAX_JWT_LIFETIME_SECS {
            return Err(JWT_TOO_LONG);
        }
        Ok(())
    }

    /// A new installation token and its expiry; expired tokens are forgotten (they stay
    /// rejected: an unknown `ghs_` token is as bad as an expired one).
    pub fn issue(&mut self, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        self.tokens.retain(|_, expires| *expires > now);
        self.issued += 1;
        let seed = format!(
            "{}:{}:{}:{}",
            self.id,
            self.installation_id,
            self.issued,
            now.timestamp_nanos_opt().unwrap_or_default()
        );
        let digest = Sha256::digest(seed.as_bytes());
        let body: String = digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .chars()
            .take(TOKEN_CHARS)
            .collect();
        let token = format!("{INSTALLATION_TOKEN_PREFIX}{body}");
        let expires = now
            .checked_add_signed(self.lifetime)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.tokens.insert(token.clone(), expires);
        (token, expires)
    }

    /// Whether `token` was issued and has not expired.
    pub fn token_valid(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.tokens.get(token).is_some_and(|expires| *expires > now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::path::Path;
    use std::process::Command;

    /// A fresh RSA key pair from the `openssl` CLI: (private PEM, public PEM).
    pub(crate) fn key_pair(dir: &Path, name: &str) -> (String, String) {
        let private = dir.join(format!("{name}.pem"));
        let public = dir.join(format!("{name}.pub.pem"));
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("the openssl CLI is installed");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        run(&["genrsa", "-out", private.to_str().unwrap(), "2048"]);
        run(&[
            "rsa",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        (
            std::fs::read_to_string(private).unwrap(),
            std::fs::read_to_string(public).unwrap(),
        )
    }

    /// `Bearer <JWT>` with these claims, signed with `private_pem`.
    pub(crate) fn bearer(private_pem: &str, claims: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap();
        format!("Bearer {jwt}")
    }

    #[test]
    fn jwts_are_checked_like_github_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = key_pair(dir.path(), "app");
        let (other, _) = key_pair(dir.path(), "other");
        let app = App::new(42, &public, 7, Duration::from_secs(60)).unwrap();
        let now = Utc::now();
        let t = now.timestamp();
        let good = json!({ "iss": 42, "iat": t - 60, "exp": t + 540 });
        let verify = |auth: Option<&str>| app.verify_jwt(auth, now);

        assert_eq!(verify(Some(&bearer(&private, &good))), Ok(()));
        let as_string = json!({ "iss": "42", "iat": t - 60, "exp": t + 540 });
        assert_eq!(verify(Some(&bearer(&private, &as_string))), Ok(()));

        let rejected = Err(JWT_REJECTED);
        assert_eq!(verify(None), rejected, "no Authorization header");
        let token = bearer(&private, &good);
        let jwt = token.trim_start_matches("Bearer ");
        assert_eq!(
            verify(Some(&format!("token {jwt}"))),
            rejected,
            "not a bearer"
        );
        assert_eq!(
            verify(Some(&bearer(&other, &good))),
            rejected,
            "another key signed it"
        );
        let expired = json!({ "iss": 42, "iat": t - 700, "exp": t - 100 });
        assert_eq!(
            verify(Some(&bearer(&private, &expired))),
            rejected,
            "expired"
        );
        let stranger = json!({ "iss": 43, "iat": t - 60, "exp": t + 540 });
        assert_eq!(
            verify(Some(&bearer(&private, &stranger))),
            rejected,
            "another App"
        );
        let no_iss = json!({ "iat": t - 60, "exp": t + 540 });
        assert_eq!(verify(Some(&bearer(&private, &no_iss))), rejected, "no iss");
        let mut tampered = bearer(&private, &good);
        tampered.push('A');
        assert_eq!(verify(Some(&tampered)), rejected, "signature altered");
        assert_eq!(verify(Some("Bearer ghs_abc")), rejected, "not a JWT");
        let hmac = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &good,
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verify(Some(&format!("Bearer {hmac}"))),
            rejected,
            "HS256 with the public key"
        );
        let too_long = json!({ "iss": 42, "iat": t, "exp": t + 3600 });
        assert_eq!(
            verify(Some(&bearer(&private, &too_long))),
            Err(JWT_TOO_LONG)
        );
    }

    #[test]
    fn installation_tokens_are_unique_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = key_pair(dir.path(), "app");
        let mut app = App::new(1, &public, 2, Duration::from_secs(10)).unwrap();
        let now = Utc::now();
        let (a, a_exp) = app.issue(now);
        let (b, _) = app.issue(now);
        assert_ne!(a, b);
        assert!(a.starts_with("ghs_") && a.len() == 4 + TOKEN_CHARS, "{a}");
        assert_eq!(a_exp, now + TimeDelta::seconds(10));
        assert!(app.token_valid(&a, now + TimeDelta::seconds(9)));
        assert!(!app.token_valid(&a, now + TimeDelta::seconds(10)));
        assert!(!app.token_valid("ghs_unknown", now));
        app.issue(now + TimeDelta::seconds(11));
        assert!(!app.token_valid(&a, now), "expired tokens are forgotten");
        assert_eq!(app.issued, 3);
    }
}
