//! What a call hands the host besides its result: messages it published (held until the
//! result commits) and, for a call that ends waiting, the reply it waits for.

use std::time::Duration;

/// The subjects a host's broker carries and how much one call may publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingPolicy {
    /// Subject patterns a plugin may publish to (NATS wildcards: `*` one token, `>` the
    /// rest).
    pub subjects: Vec<String>,
    /// Messages one call may publish.
    pub max_messages: usize,
    /// Payload and header bytes one call may publish in all.
    pub max_bytes: usize,
}

impl MessagingPolicy {
    /// Whether `subject` is one a plugin may publish to.
    pub fn allows(&self, subject: &str) -> bool {
        self.subjects.iter().any(|p| subject_matches(p, subject))
    }
}

/// Whether `subject` matches the NATS-style `pattern`.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    if subject.is_empty() || subject.split('.').any(str::is_empty) {
        return false;
    }
    let mut tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(t)) if !t.contains(['*', '>']) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// A message a call published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Where it goes.
    pub subject: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// The plugin's headers.
    pub headers: Vec<(String, String)>,
}

/// What a call that ends waiting asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitRequest {
    /// The id the reply will carry.
    pub correlation_id: String,
    /// How long to wait.
    pub timeout: Duration,
}

/// Longest correlation id a wait may use.
pub const MAX_CORRELATION_ID: usize = 200;

impl WaitRequest {
    /// Check what the plugin asked for: a correlation id of visible ASCII and sane length.
    pub fn check(&self) -> Result<(), String> {
        let id = &self.correlation_id;
        if id.is_empty() || id.len() > MAX_CORRELATION_ID {
            return Err(format!(
                "a wait's correlation id must have 1 to {MAX_CORRELATION_ID} characters; it has {}",
                id.len()
            ));
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "a wait's correlation id must be visible ASCII without spaces: `{}`",
                id.escape_debug()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_nats_wildcards() {
        assert!(subject_matches(
            "rte.requests.>",
            "rte.requests.ledger.transfer"
        ));
        assert!(!subject_matches("rte.requests.>", "rte.requests"));
        assert!(subject_matches("ledger.*", "ledger.transfer"));
        assert!(!subject_matches("ledger.*", "ledger.transfer.x"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.c"));
        assert!(!subject_matches("a.>", "a..b"));
        assert!(!subject_matches("a.*", "a.>"));
    }

    #[test]
    fn correlation_ids_are_checked() {
        let w = |id: &str| WaitRequest {
            correlation_id: id.into(),
            timeout: Duration::from_secs(1),
        };
        assert!(w("tx/step/1").check().is_ok());
        assert!(w("").check().is_err());
        assert!(w("has space").check().is_err());
        assert!(w(&"x".repeat(201)).check().is_err());
    }
}
