//! `Authorization: Bearer <JWT>` for polling clients, verified locally with
//! the same keys and rules as the socket handshake.

use axum::http::{HeaderMap, StatusCode, header};
use common::auth::AuthError;

use super::error::ApiError;
use crate::shared::Shared;

/// The uid of the request's bearer token.
pub(crate) fn uid(shared: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(verifier) = &shared.verifier else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "polling is not configured",
        ));
    };
    let token = bearer(headers)?;
    match verifier.verify(token) {
        Ok(claims) => Ok(claims.sub),
        Err(AuthError::Expired) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "token expired",
        )),
        Err(error) => Err(unauthenticated(error.to_string())),
    }
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
