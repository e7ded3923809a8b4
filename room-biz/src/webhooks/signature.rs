//! `Roomcast-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256 over
//! `"<t>.<body>"` with the newest webhook secret. A receiver recomputes it
//! with each secret it still accepts (so secrets can rotate: add the new
//! one to the receiver, then put it first on room-biz, then drop the old
//! one), compares in constant time, and refuses stale timestamps.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub(crate) const HEADER: &str = "roomcast-signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `timestamp` (Unix seconds).
pub(crate) fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Why a signature was refused.
#[cfg(test)]
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerifyError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// No accepted secret produced it.
    #[error("signature does not match")]
    Mismatch,
}

/// Check `header` for `body` against any of `secrets`, accepting timestamps
/// within `tolerance_secs` of `now_secs`: what a receiver does (docs/room-api.md).
/// room-biz only signs; this is the receiver's side, for the tests.
#[cfg(test)]
pub(crate) fn verify(
    secrets: &[&str],
    header: &str,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => signatures.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if timestamp.abs_diff(now_secs) > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let matches = secrets.iter().any(|secret| {
        signatures
            .iter()
            .any(|sig| mac(secret, timestamp, body).verify_slice(sig).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "old-secret-0123456789";
    const NEW: &str = "new-secret-0123456789";

    #[test]
    fn a_signature_verifies_with_any_accepted_secret_and_nothing_else() {
        let body = br#"{"id":"1-0","type":"room.started"}"#;
        let header = sign(NEW, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(
            verify(&[OLD, NEW], &header, body, 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify(&[OLD], &header, body, 1_700_000_010, 300),
            Err(VerifyError::Mismatch),
            "a receiver without the new secret refuses"
        );
        assert_eq!(
            verify(&[NEW], &header, b"{}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch),
            "another body"
        );
        assert_eq!(
            verify(&[NEW], &header, body, 1_700_001_000, 300),
            Err(VerifyError::Stale)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1700000000,v1=zz"] {
            assert_eq!(
                verify(&[NEW], bad, body, 1_700_000_000, 300),
                Err(VerifyError::Malformed),
                "{bad:?}"
            );
        }
        // A vector computed elsewhere (Python's hmac): HMAC-SHA256("key", "1.{}").
        assert_eq!(
            sign("key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
