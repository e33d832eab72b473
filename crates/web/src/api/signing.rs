//! Standard Webhooks (v1): a secret shown as `whsec_` + base64 of 32 random bytes; each message
//! signed as `v1,` + base64(HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")),
//! several signatures space-separated during a secret's rotation. And the SSRF rule every
//! partner URL passes: no loopback, private, link-local or otherwise internal address — at
//! creation for a literal address, and after DNS resolution before every connection (the
//! gateway's sender resolves through [`forbidden_ip`]).

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The secret's visible start.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The secret's key bytes (the base64 after `whsec_`); `None` for a secret that does not read.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()
}

/// The `webhook-signature` header's value: one `v1,<signature>` per secret.
pub fn sign(secrets: &[&str], id: &str, timestamp_s: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| {
            let key = key_of(s)?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp_s.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a partner's webhook may not reach `ip`: loopback (unless the operator allows it
/// for local receivers), private, link-local, carrier-grade NAT, unspecified, multicast,
/// broadcast, documentation and IPv6 unique-local addresses, and IPv4 behind IPv6 mappings.
pub fn forbidden_ip(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            (v4.is_loopback() && !allow_loopback)
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4), allow_loopback);
            }
            let first = v6.segments()[0];
            (v6.is_loopback() && !allow_loopback)
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

/// Why a URL cannot be an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL: {0}")]
    Parse(String),
    #[error("an endpoint is http:// or https://")]
    Scheme,
    #[error("a URL with a user or password is not taken")]
    Credentials,
    #[error("{0} is an internal address: webhooks go to the partner's public servers only")]
    Internal(String),
}

/// Checks an endpoint's URL as typed: its scheme, no credentials, and a literal address (or
/// `localhost`) that is not internal. Names are checked again after each resolution.
pub fn check_url(typed: &str, allow_loopback: bool) -> Result<url::Url, UrlError> {
    let url = url::Url::parse(typed.trim()).map_err(|e| UrlError::Parse(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let internal = match url.host() {
        None => return Err(UrlError::Parse("no host".into())),
        Some(url::Host::Ipv4(ip)) => forbidden_ip(IpAddr::V4(ip), allow_loopback),
        Some(url::Host::Ipv6(ip)) => forbidden_ip(IpAddr::V6(ip), allow_loopback),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            !allow_loopback && (d == "localhost" || d.ends_with(".localhost"))
        }
    };
    if internal {
        return Err(UrlError::Internal(
            url.host_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_signs_alike() {
        // The example of the Standard Webhooks specification (and its reference libraries).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&[secret], id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Two secrets: two signatures.
        let both = sign(&[secret, secret], id, 1614265330, body);
        assert_eq!(both.split(' ').count(), 2);
        let made = new_secret().unwrap();
        assert!(made.starts_with("whsec_") && key_of(&made).unwrap().len() == 32);
    }

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(forbidden_ip(ip.parse().unwrap(), false), "{ip}");
        }
        for ip in ["93.184.216.34", "2a00:1450:4010::64"] {
            assert!(!forbidden_ip(ip.parse().unwrap(), false), "{ip}");
        }
        assert!(!forbidden_ip("127.0.0.1".parse().unwrap(), true));
        assert!(forbidden_ip("10.0.0.1".parse().unwrap(), true));
        assert!(matches!(
            check_url("http://169.254.169.254/latest", false),
            Err(UrlError::Internal(_))
        ));
        assert!(matches!(
            check_url("http://[::1]:8080/", false),
            Err(UrlError::Internal(_))
        ));
        assert!(matches!(
            check_url("http://localhost/", false),
            Err(UrlError::Internal(_))
        ));
        assert_eq!(check_url("ftp://x.example/", false), Err(UrlError::Scheme));
        assert_eq!(
            check_url("https://u:p@hooks.example/", false),
            Err(UrlError::Credentials)
        );
        assert!(check_url("https://hooks.partner.example/loyalty", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
    }
}
