//! Secrets (tokens, keys, webhook secrets): read from env or a file when needed, never shown.

use rings::model::SecretSource;

/// A token or other secret, read when needed. `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Read from its source.
    pub fn read(source: &SecretSource) -> Result<Secret, String> {
        let value = match source {
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            SecretSource::File(path) => {
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(Secret(value))
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Remove the secret from a message (defence in depth: libgit2 never sees it in a URL).
    pub fn redact(&self, message: &str) -> String {
        message.replace(&self.0, "***")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
