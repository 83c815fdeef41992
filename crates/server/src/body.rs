//! Request bodies and query strings: read within the size limit and parsed,
//! with every failure answered as the client's mistake (413 or 422, in the
//! API's JSON error shape) naming what was wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A body not yet parsed, so that a handler can check who is calling and
/// whether the target exists before it judges the body.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(format!(
                    "the request body is larger than the limit of {} bytes",
                    state.settings.body_limit_bytes
                )))
            }
            Err(rejection) => {
                Err(ApiError::invalid(format!("the request body could not be read: {rejection}")))
            }
        }
    }
}

impl RawBody {
    /// Parses the body as `T`; an empty body reads as `{}`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bytes: &[u8] = if self.0.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.0 };
        serde_json::from_slice(bytes)
            .map_err(|err| ApiError::invalid(format!("the request body is not valid: {err}")))
    }
}

/// A JSON body parsed at once.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let raw = RawBody::from_request(req, state).await?;
        raw.parse().map(JsonBody)
    }
}

/// A query string parsed as `T`; unknown or malformed parameters are 422.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri).map(|Query(params)| Self(params)).map_err(|err| {
            let text = err.body_text();
            let reason = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
            ApiError::invalid(format!("the query string is not valid: {reason}"))
        })
    }
}
