//! `POST /v1/users/{uid}/revoke`: the app backend revokes a uid's tokens
//! and closes its sessions now (see `crate::revoke`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::revoke::{self, RevokeError};
use crate::shared::Shared;

pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    Path(uid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    common::auth::check_uid(&uid).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_text",
            why.replace("subject", "uid"),
        )
    })?;
    let backends = &shared.backends;
    match revoke::revoke(
        backends.store.as_ref(),
        backends.pusher.as_ref(),
        &uid,
        shared.cfg.token_max_lifetime_secs,
    )
    .await
    {
        Ok(done) => Ok(Json(json!({
            "uid": uid,
            "revoked_before_secs": done.revoked_before_secs,
            "online": done.online,
        }))),
        Err(error @ RevokeError::Store(_)) => Err(ApiError::unavailable(error.to_string())),
        Err(error @ RevokeError::Push(_)) => {
            tracing::warn!(%uid, %error, "Revocation recorded but not pushed.");
            Err(ApiError::unavailable(error.to_string()).retry_after(1))
        }
    }
}

#[cfg(test)]
mod tests;
