//! Handshake authentication: app-issued JWTs verified locally on the conn node,
//! so the auth path has no network hop.
//!
//! Besides the signature and `exp`, a token is checked against [`TokenRules`]:
//! `nbf` (not before), the configured audience and issuer (required when
//! configured), a longest lifetime, and an `iat` not in the future. Refusals
//! carry the detail for the server log ([`AuthError`]'s `Display`) and a
//! short, stable reason for the peer ([`AuthError::public_reason`]) that names
//! no algorithm and no parser internals.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Longest uid (`sub`) accepted, in characters.
pub const UID_MAX_CHARS: usize = 128;
/// Longest token lifetime accepted unless configured otherwise: 24 hours.
pub const DEFAULT_TOKEN_MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// The claims Roomcast reads from a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds (0 when absent: such a token counts as issued
    /// before any revocation).
    #[serde(default)]
    pub iat: u64,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// What a token must satisfy besides its signature: the service's
/// `token_audience`, `token_issuer` and `token_max_lifetime_secs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRules {
    /// Required `aud` (one of the token's audiences must match). `None`: a
    /// token naming an audience is refused, one without is accepted.
    pub audience: Option<String>,
    /// Required `iss`. `None`: not checked.
    pub issuer: Option<String>,
    /// Longest lifetime, seconds: `exp - iat`, or `exp - now` when the token
    /// has no `iat`. 0 means no limit.
    pub max_lifetime_secs: u64,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            audience: None,
            issuer: None,
            max_lifetime_secs: DEFAULT_TOKEN_MAX_LIFETIME_SECS,
        }
    }
}

impl TokenRules {
    /// Rules from a service's configuration keys; blank strings mean unset.
    pub fn new(audience: Option<&str>, issuer: Option<&str>, max_lifetime_secs: u64) -> Self {
        let set = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Self {
            audience: set(audience),
            issuer: set(issuer),
            max_lifetime_secs,
        }
    }
}

/// Why a token was refused. `Display` is the detail for the server log; peers
/// get [`AuthError::public_reason`].
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
    /// `nbf` is in the future.
    #[error("token not valid yet (nbf in the future)")]
    NotYetValid,
    /// `aud` is missing or not the configured audience.
    #[error("token audience is missing or not accepted")]
    Audience,
    /// `iss` is missing or not the configured issuer.
    #[error("token issuer is missing or not accepted")]
    Issuer,
    /// `exp - iat` (or `exp - now`) is longer than allowed.
    #[error("token lifetime of {lifetime_secs} s exceeds the limit of {max_secs} s")]
    LifetimeTooLong {
        /// The token's lifetime.
        lifetime_secs: u64,
        /// The configured limit.
        max_secs: u64,
    },
    /// The uid's tokens issued before a revocation are no longer accepted.
    #[error("token revoked (issued at {iat}, tokens before {revoked_before} are revoked)")]
    Revoked {
        /// The token's `iat`.
        iat: u64,
        /// Tokens issued before this (Unix seconds) are revoked.
        revoked_before: u64,
    },
    /// A key in the configuration cannot be used.
    #[error("bad key configuration: {0}")]
    BadKey(String),
}

impl AuthError {
    /// A short, stable reason for the peer: no algorithm, key or parser detail.
    pub fn public_reason(&self) -> &'static str {
        match self {
            Self::Expired => "token expired",
            Self::NotYetValid => "token not valid yet",
            Self::Audience => "token audience not accepted",
            Self::Issuer => "token issuer not accepted",
            Self::LifetimeTooLong { .. } => "token lifetime too long",
            Self::Revoked { .. } => "token revoked",
            Self::Invalid(_) | Self::UnsupportedAlgorithm(_) | Self::BadKey(_) => "invalid token",
        }
    }
}

/// Verifies HS256 tokens (shared secret) and, if configured, EdDSA tokens.
#[derive(Clone)]
pub struct TokenVerifier {
    hs256: Option<DecodingKey>,
    eddsa: Option<DecodingKey>,
    rules: TokenRules,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hs256", &self.hs256.is_some())
            .field("eddsa", &self.eddsa.is_some())
            .field("rules", &self.rules)
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier for HS256 with `secret` and, optionally, EdDSA with a PEM
    /// public key, under the default [`TokenRules`].
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
        Ok(Self {
            hs256,
            eddsa,
            rules: TokenRules::default(),
        })
    }

    /// The same keys under `rules`.
    pub fn with_rules(self, rules: TokenRules) -> Self {
        Self { rules, ..self }
    }

    /// The rules tokens are checked against.
    pub fn rules(&self) -> &TokenRules {
        &self.rules
    }

    /// Verify signature, expiry and the rules; return the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, crate::time::now_ms() / 1000)
    }

    /// [`Self::verify`] with the lifetime and `iat` checks at `now` (Unix
    /// seconds); `exp` and `nbf` are checked against the system clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::EdDSA => self.eddsa.as_ref(),
            _ => None,
        }
        .ok_or_else(|| AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(audience) = &self.rules.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        if let Some(issuer) = &self.rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let claims = match jsonwebtoken::decode::<Claims>(token, key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                return Err(match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidAudience => AuthError::Audience,
                    ErrorKind::InvalidIssuer => AuthError::Issuer,
                    ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::Audience,
                    ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::Issuer,
                    _ => AuthError::Invalid(e.to_string()),
                });
            }
        };
        check_uid(&claims.sub).map_err(AuthError::Invalid)?;
        if claims.iat > now + LEEWAY_SECS {
            return Err(AuthError::Invalid("iat is in the future".into()));
        }
        let max = self.rules.max_lifetime_secs;
        if max > 0 {
            let from = if claims.iat > 0 { claims.iat } else { now };
            let lifetime_secs = claims.exp.saturating_sub(from);
            if lifetime_secs > max {
                return Err(AuthError::LifetimeTooLong {
                    lifetime_secs,
                    max_secs: max,
                });
            }
        }
        Ok(claims)
    }
}

/// Check a uid from a token: 1 to [`UID_MAX_CHARS`] characters, no control
/// characters, no bidi overrides or isolates (U+202A–U+202E, U+2066–U+2069),
/// which would let a name display as another.
pub fn check_uid(uid: &str) -> Result<(), String> {
    let chars = uid.chars().count();
    if chars == 0 || chars > UID_MAX_CHARS {
        return Err(format!("subject must be 1 to {UID_MAX_CHARS} characters"));
    }
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if let Some(c) = uid.chars().find(|&c| unsafe_char(c)) {
        return Err(format!(
            "subject contains a control or bidi-override character (U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(())
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
        nbf: None,
    };
    mint_hs256_claims(secret, &claims)
}

/// Mint an HS256 token carrying any claims (tests of `aud`, `iss`, `nbf`).
pub fn mint_hs256_claims<C: Serialize>(secret: &str, claims: &C) -> Result<String, AuthError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> u64 {
        crate::time::now_ms() / 1000
    }

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

    #[test]
    fn nbf_in_the_future_is_refused_and_in_the_past_accepted() {
        let verifier = TokenVerifier::new(Some("s"), None).expect("verifier");
        let t = now();
        let early = json!({"sub": "a", "iat": t, "exp": t + 600, "nbf": t + 300});
        let early = mint_hs256_claims("s", &early).expect("mint");
        assert_eq!(verifier.verify(&early), Err(AuthError::NotYetValid));
        let ready = json!({"sub": "a", "iat": t, "exp": t + 600, "nbf": t - 10});
        let ready = mint_hs256_claims("s", &ready).expect("mint");
        assert_eq!(verifier.verify(&ready).expect("valid").nbf, Some(t - 10));
    }

    #[test]
    fn configured_audience_and_issuer_are_required_and_checked() {
        let rules = TokenRules::new(Some("roomcast"), Some("https://app.example"), 3600);
        let verifier = TokenVerifier::new(Some("s"), None)
            .expect("verifier")
            .with_rules(rules);
        let t = now();
        let mint = |claims: serde_json::Value| mint_hs256_claims("s", &claims).expect("mint");
        let good = mint(json!({"sub": "a", "iat": t, "exp": t + 60,
            "aud": "roomcast", "iss": "https://app.example"}));
        assert_eq!(verifier.verify(&good).expect("valid").sub, "a");
        let many = mint(json!({"sub": "a", "iat": t, "exp": t + 60,
            "aud": ["other", "roomcast"], "iss": "https://app.example"}));
        assert!(verifier.verify(&many).is_ok(), "one of several audiences");

        let no_aud =
            mint(json!({"sub": "a", "iat": t, "exp": t + 60, "iss": "https://app.example"}));
        assert_eq!(verifier.verify(&no_aud), Err(AuthError::Audience));
        let other_aud = mint(json!({"sub": "a", "iat": t, "exp": t + 60,
            "aud": "billing", "iss": "https://app.example"}));
        assert_eq!(verifier.verify(&other_aud), Err(AuthError::Audience));
        let no_iss = mint(json!({"sub": "a", "iat": t, "exp": t + 60, "aud": "roomcast"}));
        assert_eq!(verifier.verify(&no_iss), Err(AuthError::Issuer));
        let other_iss = mint(json!({"sub": "a", "iat": t, "exp": t + 60,
            "aud": "roomcast", "iss": "https://evil.example"}));
        assert_eq!(verifier.verify(&other_iss), Err(AuthError::Issuer));

        // Unconfigured: issuer ignored, a plain token accepted.
        let plain = TokenVerifier::new(Some("s"), None).expect("verifier");
        assert!(plain.verify(&no_aud).is_ok());
    }

    #[test]
    fn lifetime_is_bounded_with_or_without_iat() {
        let verifier = TokenVerifier::new(Some("s"), None)
            .expect("verifier")
            .with_rules(TokenRules::new(None, None, 3600));
        let t = now();
        let mint = |claims: serde_json::Value| mint_hs256_claims("s", &claims).expect("mint");
        let hour = mint(json!({"sub": "a", "iat": t, "exp": t + 3600}));
        assert!(verifier.verify(&hour).is_ok());
        let year = mint(json!({"sub": "a", "iat": t, "exp": t + 365 * 86_400}));
        assert!(matches!(
            verifier.verify(&year),
            Err(AuthError::LifetimeTooLong { max_secs: 3600, .. })
        ));
        // Issued long ago, still within exp - iat: the lifetime is what counts.
        let old_long = mint(json!({"sub": "a", "iat": t - 7000, "exp": t + 100}));
        assert!(matches!(
            verifier.verify(&old_long),
            Err(AuthError::LifetimeTooLong { .. })
        ));
        let no_iat_long = mint(json!({"sub": "a", "exp": t + 7200}));
        assert!(matches!(
            verifier.verify(&no_iat_long),
            Err(AuthError::LifetimeTooLong { .. })
        ));
        let no_iat_short = mint(json!({"sub": "a", "exp": t + 600}));
        assert_eq!(verifier.verify(&no_iat_short).expect("valid").iat, 0);
        let future_iat = mint(json!({"sub": "a", "iat": t + 600, "exp": t + 1200}));
        assert!(matches!(
            verifier.verify(&future_iat),
            Err(AuthError::Invalid(_))
        ));

        let unlimited = TokenVerifier::new(Some("s"), None)
            .expect("verifier")
            .with_rules(TokenRules::new(None, None, 0));
        assert!(unlimited.verify(&year).is_ok());
    }

    #[test]
    fn uids_with_control_or_bidi_characters_are_refused() {
        let verifier = TokenVerifier::new(Some("s"), None).expect("verifier");
        for bad in ["", "ali\u{202E}ec", "a\u{2066}", "tab\tuid", "nul\0"] {
            let token = mint_hs256("s", bad, 60).expect("mint");
            let err = verifier.verify(&token).expect_err(bad);
            assert!(matches!(err, AuthError::Invalid(_)), "{bad:?}: {err}");
        }
        let long = "u".repeat(UID_MAX_CHARS + 1);
        assert!(
            verifier
                .verify(&mint_hs256("s", &long, 60).expect("mint"))
                .is_err()
        );
        for good in ["alice", "用户-42", "ユーザー", "user@example.com"] {
            let token = mint_hs256("s", good, 60).expect("mint");
            assert_eq!(verifier.verify(&token).expect(good).sub, good);
        }
    }

    #[test]
    fn public_reasons_name_no_algorithm_or_parser_detail() {
        let verifier = TokenVerifier::new(Some("s"), None).expect("verifier");
        let none_alg =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        let rs256 = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2ln";
        for token in ["garbage", none_alg, rs256, "a.b.c"] {
            let err = verifier.verify(token).expect_err("refused");
            assert_eq!(err.public_reason(), "invalid token", "{err}");
        }
        let err = verifier.verify(rs256).expect_err("refused");
        assert!(
            err.to_string().contains("RS256"),
            "the log keeps the detail: {err}"
        );
    }
}
