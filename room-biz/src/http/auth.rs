//! `Authorization: Bearer <JWT>` for polling clients, verified locally with
//! the same keys and rules as the socket handshake, then checked against the
//! uid's token revocation (a store read). The peer is told a short, stable
//! reason; the detail goes to the log.

use axum::http::{HeaderMap, StatusCode, header};
use common::auth::AuthError;

use super::error::ApiError;
use crate::revoke;
use crate::shared::Shared;

/// The uid of the request's bearer token.
pub(crate) async fn uid(shared: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(verifier) = &shared.verifier else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "polling is not configured",
        ));
    };
    let token = bearer(headers)?;
    let claims = verifier.verify(token).map_err(refused)?;
    match revoke::check(shared.backends.store.as_ref(), &claims.sub, claims.iat).await {
        Ok(()) => Ok(claims.sub),
        Err(revoke::Refused::Revoked(error)) => Err(refused(error)),
        Err(revoke::Refused::Store(error)) => Err(ApiError::unavailable(error.to_string())),
    }
}

/// The answer to a refused token: 401 with a stable code and reason.
fn refused(error: AuthError) -> ApiError {
    tracing::debug!(%error, "Client token refused.");
    let code = match error {
        AuthError::Expired => "token_expired",
        AuthError::Revoked { .. } => "token_revoked",
        _ => "unauthenticated",
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, error.public_reason())
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthenticated("missing Authorization: Bearer token"))?
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not ASCII"))?;
    // The scheme is case-insensitive (RFC 7235); the token is not.
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthenticated("the Authorization header is not Bearer <token>"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(unauthenticated(
            "the Authorization header is not Bearer <token>",
        ));
    }
    Ok(token)
}

fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}
