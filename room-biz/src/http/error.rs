//! HTTP errors: [`ApiError`] (every error answer is JSON), the JSON body
//! extractor, and the HTTP answer of a [`Refusal`].

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use proto::client::v1::Code;
use room_store::StoreError;
use room_store::domain::rules::Refusal;
use serde::de::DeserializeOwned;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (retryable answers).
    retry_after_secs: Option<u32>,
}

impl ApiError {
    /// An answer with `status` and `{"error":{"code","message"}}`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// The same answer with `Retry-After: secs`.
    pub(crate) fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A text field with a control or bidi-override character.
    pub(crate) fn invalid_text(bad: room_store::domain::text::BadText) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_text", bad.to_string())
    }

    pub(crate) fn room_not_found(room: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "room_not_found",
            format!("room {room} not found"),
        )
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::RoomNotFound(room) => Self::room_not_found(&room),
            other => Self::unavailable(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Like `axum::Json`, but rejections are JSON [`ApiError`]s naming the problem,
/// and a missing `content-type` is tolerated (curl users forget it).
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

pub(crate) fn body_error(refusal: BytesRejection) -> ApiError {
    let status = refusal.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too_large"
    } else {
        "bad_request"
    };
    ApiError::new(status, code, refusal.body_text())
}

/// The HTTP answer of a refused action (or room change).
pub(crate) fn refusal_error(refusal: Refusal) -> ApiError {
    let (status, code) = match refusal.code {
        Code::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
        Code::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        Code::RoomNotFound => (StatusCode::NOT_FOUND, "room_not_found"),
        Code::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Code::RoomEnded => (StatusCode::CONFLICT, "room_ended"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Code::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        Code::InvalidText => (StatusCode::BAD_REQUEST, "invalid_text"),
        // Handlers use the codes above; anything else is a bug on our side.
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    ApiError::new(status, code, refusal.message)
}
