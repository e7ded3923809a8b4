//! Handshake authentication: app-issued JWTs verified locally on the conn node,
//! so the auth path has no network hop.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims Roomcast reads from a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: u64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// Signature, algorithm or format is wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The verifier has no key for the token's algorithm.
    #[error("token algorithm {0} is not accepted by this server")]
    UnsupportedAlgorithm(String),
    /// A key in the configuration cannot be used.
    #[error("bad key configuration: {0}")]
    BadKey(String),
}

/// Verifies HS256 tokens (shared secret) and, if configured, EdDSA tokens.
#[derive(Clone)]
pub struct TokenVerifier {
    hs256: Option<DecodingKey>,
    eddsa: Option<DecodingKey>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hs256", &self.hs256.is_some())
            .field("eddsa", &self.eddsa.is_some())
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier for HS256 with `secret` and, optionally, EdDSA with a PEM public key.
    pub fn new(secret: Option<&str>, eddsa_public_pem: Option<&str>) -> Result<Self, AuthError> {
        let hs256 = secret
            .filter(|s| !s.is_empty())
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let eddsa = match eddsa_public_pem {
            Some(pem) => Some(
                DecodingKey::from_ed_pem(pem.as_bytes())
                    .map_err(|e| AuthError::BadKey(e.to_string()))?,
            ),
            None => None,
        };
        if hs256.is_none() && eddsa.is_none() {
            return Err(AuthError::BadKey(
                "neither an HS256 secret nor an EdDSA key".into(),
            ));
        }
        Ok(Self { hs256, eddsa })
    }

    /// Verify signature and expiry; return the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::EdDSA => self.eddsa.as_ref(),
            _ => None,
        }
        .ok_or_else(|| AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, key, &validation) {
            Ok(data) if data.claims.sub.is_empty() => {
                Err(AuthError::Invalid("empty subject".into()))
            }
            Ok(data) => Ok(data.claims),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err(AuthError::Expired),
                _ => Err(AuthError::Invalid(e.to_string())),
            },
        }
    }
}

/// Mint an HS256 token for `uid` valid for `ttl_secs` (dev tools and tests;
/// in production the app backend issues tokens).
pub fn mint_hs256(secret: &str, uid: &str, ttl_secs: i64) -> Result<String, AuthError> {
    let now = crate::time::now_ms() / 1000;
    let exp = (now as i64 + ttl_secs).max(0) as u64;
    let claims = Claims {
        sub: uid.to_string(),
        exp,
        iat: now,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_and_refuses_bad_tokens() {
        let verifier = TokenVerifier::new(Some("s3cret"), None).expect("verifier");
        let token = mint_hs256("s3cret", "alice", 60).expect("mint");
        assert_eq!(verifier.verify(&token).expect("valid").sub, "alice");

        let wrong = mint_hs256("other", "alice", 60).expect("mint");
        assert!(matches!(
            verifier.verify(&wrong),
            Err(AuthError::Invalid(_))
        ));

        let expired = mint_hs256("s3cret", "alice", -120).expect("mint");
        assert_eq!(verifier.verify(&expired), Err(AuthError::Expired));

        assert!(matches!(
            verifier.verify("garbage"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn needs_a_key() {
        assert!(TokenVerifier::new(None, None).is_err());
        assert!(TokenVerifier::new(Some(""), None).is_err());
    }
}
