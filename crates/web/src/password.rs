//! Passwords as argon2id (the crate's defaults: m = 19 MiB, t = 2, p = 1, OWASP's minimum), in
//! PHC form. Hashing takes tens of milliseconds of CPU: callers on the async threads use
//! [`hash_blocking`] and [`verify_blocking`].

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// The shortest password accepted.
pub const MIN_LEN: usize = 10;
/// The longest: a longer one only costs the hash time.
pub const MAX_LEN: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("a password has at least {MIN_LEN} characters")]
    TooShort,
    #[error("a password has at most {MAX_LEN} characters")]
    TooLong,
    #[error("could not hash the password: {0}")]
    Hash(String),
}

/// The rules a new password meets.
pub fn check(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_LEN {
        Err(PasswordError::TooShort)
    } else if n > MAX_LEN {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

/// A new password's hash (its rules checked first), salted from the OS.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `phc`; a malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    password.len() <= 4 * MAX_LEN
        && Argon2::default()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
}

pub async fn hash_blocking(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Verifies off the async threads; `None` for the hash runs a verification all the same
/// against a fixed hash, so an unknown e-mail takes as long as a wrong password.
pub async fn verify_blocking(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => {
            verify(&password, DECOY);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// A valid argon2id hash of a random string nobody knows, with the default parameters.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     Jd4SMd+mQJdZq8wS8bx4FJGyS8xR1kAAxY5NnW+HZE0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("anything", "not a hash"));
        assert_ne!(hash("correct horse battery").unwrap(), h, "salted");
    }

    #[test]
    fn rules_are_checked_before_hashing() {
        assert_eq!(hash("short"), Err(PasswordError::TooShort));
        assert_eq!(check(&"я".repeat(10)), Ok(()));
        assert_eq!(check(&"x".repeat(257)), Err(PasswordError::TooLong));
    }

    #[test]
    fn the_decoy_is_a_hash_that_verifies_nothing_typed() {
        assert!(argon2::password_hash::phc::PasswordHash::new(DECOY).is_ok());
        assert!(!verify("", DECOY));
    }
}
