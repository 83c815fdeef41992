//! Who is calling: the bearer token on each request, checked against the
//! store's hashes, and the coarse role checks that routes declare.
//!
//! Fine-grained rules (whose request, which system, separation of duties) are
//! the core's; here only "is this caller someone" and "does the caller hold a
//! role that could ever take this route" are answered.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use patchwarden_core::{Account, Role};

use crate::AppState;
use crate::error::ApiError;
use crate::secrets;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub account: Account,
    pub token_id: i64,
}

impl Caller {
    /// Refuses unless the caller holds one of `roles`.
    pub fn require_any(&self, roles: &[Role], doing: &str) -> Result<(), ApiError> {
        if roles.iter().any(|role| self.account.has(*role)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!(
            "'{}' may not {doing}: that needs the role {}",
            self.account.name,
            names.join(" or ")
        )))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("no API token: send 'Authorization: Bearer TOKEN'".to_owned())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the Authorization header must be 'Bearer TOKEN'".to_owned(),
                )
            })?;
        let found = state.store.authenticate(&secrets::digest(token)).await?;
        match found {
            Some((account, token_id)) => Ok(Caller { account, token_id }),
            None => {
                tracing::warn!(security = true, "unknown or revoked API token presented");
                Err(ApiError::Unauthenticated("the API token is unknown or revoked".to_owned()))
            }
        }
    }
}
