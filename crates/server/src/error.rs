//! The API's one error type and how it becomes an HTTP answer.
//!
//! Statuses follow the order the design fixes: 401 unauthenticated, 404
//! unknown, 403 role or separation of duties, 422 invalid or missing fields,
//! 409 not allowed in the current state. The body is JSON with a stable code
//! and a message that names what was wrong. Internal failures are logged once
//! with their cause and answered with a bare 500 that leaks nothing.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use patchwarden_core::{Refusal, RefusalKind, State, Verb};
use patchwarden_store::StoreError;
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    Unauthenticated(String),
    NotFound(String),
    Forbidden(String),
    Invalid { message: String, fields: Vec<String> },
    Conflict { message: String, state: Option<(State, bool)>, allowed: Vec<Verb> },
    TooLarge(String),
    Internal(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid { message: message.into(), fields: Vec::new() }
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { message: message.into(), fields: vec![field.to_owned()] }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict { message: message.into(), state: None, allowed: Vec::new() }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "PW401-unauthenticated",
            Self::NotFound(_) => "PW404-not-found",
            Self::Forbidden(_) => "PW403-forbidden",
            Self::Invalid { .. } => "PW422-invalid",
            Self::Conflict { .. } => "PW409-conflict",
            Self::TooLarge(_) => "PW413-too-large",
            Self::Internal(_) => "PW500-internal",
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal.kind {
            RefusalKind::Forbidden => Self::Forbidden(refusal.message),
            RefusalKind::Invalid => {
                Self::Invalid { message: refusal.message, fields: refusal.fields }
            }
            RefusalKind::Conflict => Self::Conflict {
                message: refusal.message,
                state: refusal.state,
                allowed: refusal.allowed,
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Refused(refusal) => refusal.into(),
            StoreError::NotFound(message) => Self::NotFound(message),
            StoreError::Invalid(message) => Self::invalid(message),
            StoreError::Contended(message) => Self::conflict(message),
            other => Self::internal(other),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    status: u16,
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<State>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed: Option<&'a [Verb]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let internal_message = "internal error: the server's log has the cause";
        let (message, fields, state, allowed): (&str, &[String], _, _) = match &self {
            Self::Unauthenticated(m)
            | Self::NotFound(m)
            | Self::Forbidden(m)
            | Self::TooLarge(m) => (m, &[], None, None),
            Self::Invalid { message, fields } => (message, fields, None, None),
            Self::Conflict { message, state, allowed } => {
                (message, &[], *state, state.map(|_| allowed.as_slice()))
            }
            Self::Internal(cause) => {
                tracing::error!(error.cause = %cause, "request failed");
                (internal_message, &[], None, None)
            }
        };
        let body = Body {
            error: Detail {
                status: status.as_u16(),
                code,
                message,
                fields,
                state: state.map(|(state, _)| state),
                paused: state.map(|(_, paused)| paused),
                allowed,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
