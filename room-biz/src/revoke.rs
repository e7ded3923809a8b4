//! Revoking a uid's tokens: "tokens of U issued before T are invalid", now.
//!
//! One path, simple and sound:
//! 1. The revocation is recorded in the room store (both engines; kept as
//!    long as the longest token lifetime, after which every such token has
//!    expired anyway).
//! 2. It is pushed to U (`PushUsers` with a typed `revocation`, the way kicks
//!    reach a user's sockets): every conn node holding a session of U closes
//!    the sessions whose token is older (`TOKEN_REVOKED`) and remembers the
//!    revocation, refusing such tokens in a hello or a refresh.
//! 3. Whatever a conn node does not remember (it held no session of U, or
//!    restarted), room-biz still enforces: every join (`AuthorizeJoin`
//!    carries the token's `iat`) and every HTTP request with a client token
//!    reads the store's mark. A revoked token may at most open a socket
//!    that can join nothing.
//!
//! Tokens issued up to and including the second of the revocation are
//! revoked (`iat` has one-second resolution); tokens without `iat` count as
//! issued at 0, so any revocation covers them.

use common::auth::{AuthError, LEEWAY_SECS};
use proto::internal::v1::{PushUsersRequest, UserRevocation};
use room_store::{RoomStore, StoreError};
use serde_json::json;

use crate::error::PushError;
use crate::pusher::RoomPusher;

/// The kind of the ephemeral event a revoked user's sessions are sent
/// before they close.
pub(crate) const TOKEN_REVOKED_EVENT: &str = "token_revoked";
/// How long a revocation is kept when tokens have no lifetime limit: 30 days.
const UNLIMITED_KEEP_SECS: u64 = 30 * 86_400;

/// A revocation that was recorded and pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Revoked {
    /// Tokens issued before this (Unix seconds) are refused.
    pub(crate) revoked_before_secs: u64,
    /// Whether the user had a connection the revocation was handed to.
    pub(crate) online: bool,
}

/// Why a revocation did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RevokeError {
    /// Nothing was recorded.
    #[error("cannot record the revocation: {0}")]
    Store(#[from] StoreError),
    /// Recorded (new joins and polls are refused), but open sessions could
    /// not be told to close; repeating the call is safe.
    #[error("revocation recorded, but open sessions could not be closed: {0}")]
    Push(#[from] PushError),
}

/// Revoke `uid`'s tokens issued up to now; `max_lifetime_secs` is the
/// configured longest token lifetime (0: none).
pub(crate) async fn revoke(
    store: &dyn RoomStore,
    pusher: &dyn RoomPusher,
    uid: &str,
    max_lifetime_secs: u64,
) -> Result<Revoked, RevokeError> {
    let revoked_before_secs = common::time::now_ms() / 1000 + 1;
    let keep = if max_lifetime_secs == 0 {
        UNLIMITED_KEEP_SECS
    } else {
        max_lifetime_secs
    };
    store
        .revoke_tokens(uid, revoked_before_secs, keep + LEEWAY_SECS + 1)
        .await?;
    let body = json!({ "uid": uid, "revoked_before_secs": revoked_before_secs });
    let reply = pusher
        .push_users(PushUsersRequest {
            uids: vec![uid.to_owned()],
            kind: TOKEN_REVOKED_EVENT.into(),
            body: bytes::Bytes::from(body.to_string()),
            removal: None,
            revocation: Some(UserRevocation {
                revoked_before_secs,
            }),
        })
        .await?;
    tracing::info!(%uid, revoked_before_secs, online = reply.online, "Tokens revoked.");
    Ok(Revoked {
        revoked_before_secs,
        online: reply.online > 0,
    })
}

/// Refuse a token of `uid` issued at `iat` if a revocation covers it.
pub(crate) async fn check(store: &dyn RoomStore, uid: &str, iat: u64) -> Result<(), Refused> {
    match store.tokens_revoked_before(uid).await {
        Ok(Some(revoked_before)) if iat < revoked_before => {
            Err(Refused::Revoked(AuthError::Revoked {
                iat,
                revoked_before,
            }))
        }
        Ok(_) => Ok(()),
        Err(error) => Err(Refused::Store(error)),
    }
}

/// Why [`check`] did not pass a token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// The token is revoked.
    #[error(transparent)]
    Revoked(AuthError),
    /// The store could not say.
    #[error("cannot read revocations: {0}")]
    Store(StoreError),
}
