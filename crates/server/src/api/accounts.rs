//! Accounts, invitations, logins and API tokens.
//!
//! Only admins create accounts; an account gets its first password and token
//! by redeeming its single-use, expiring invitation. Nobody, admins included,
//! can create a token for someone else: every token route acts on the caller.

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use jiff::SignedDuration;
use patchwarden_core::{AccountName, Email, Role, Roles};
use patchwarden_store::{NewAccount, Redemption};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::body::{JsonBody, RawBody};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, Peer, secrets, views};

/// Roles as a list or as one comma-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RolesBody {
    List(Vec<String>),
    Joined(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountBody {
    name: String,
    roles: RolesBody,
    email: Option<String>,
    position: Option<String>,
}

async fn invite(
    state: &AppState,
    actor: &str,
    account: &patchwarden_core::Account,
) -> ApiResult<Value> {
    let code = secrets::generate(secrets::INVITATION_PREFIX).map_err(ApiError::internal)?;
    let now = state.clock.now();
    let expires_at = now + SignedDuration::from_hours(i64::from(state.settings.invitation_hours));
    state
        .store
        .issue_invitation(actor, account.id, &secrets::digest(code.expose()), expires_at, now)
        .await?;
    Ok(json!({ "code": code.expose(), "expires_at": expires_at }))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawBody,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::Admin], "create accounts")?;
    let body: CreateAccountBody = raw.parse()?;
    let name = AccountName::parse(&body.name).map_err(|m| ApiError::invalid_field("name", m))?;
    let roles = match &body.roles {
        RolesBody::List(list) => Roles::parse_list(&list.join(",")),
        RolesBody::Joined(joined) => Roles::parse_list(joined),
    }
    .map_err(|m| ApiError::invalid_field("roles", m))?;
    let email = body
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|m| ApiError::invalid_field("email", m))?;
    let position = body.position.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty());
    if position.as_ref().is_some_and(|p| p.chars().count() > 200) {
        return Err(ApiError::invalid_field("position", "position is longer than 200 characters"));
    }
    let new = NewAccount { name, email, position, roles };
    let actor = caller.account.name.as_str();
    let account = state.store.create_account(actor, new, state.clock.now()).await?;
    let invitation = invite(&state, actor, &account).await?;
    Ok(Json(json!({ "account": views::account(&account), "invitation": invitation })))
}

pub async fn reinvite(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::Admin], "invite accounts")?;
    let account = state.store.account_by_name(&name).await?;
    let invitation = invite(&state, caller.account.name.as_str(), &account).await?;
    Ok(Json(json!({ "account": views::account(&account), "invitation": invitation })))
}

pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let accounts: Vec<Value> = state.store.accounts().await?.iter().map(views::account).collect();
    Ok(Json(json!({ "accounts": accounts })))
}

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let account = state.store.account_by_name(&name).await?;
    Ok(Json(json!({ "account": views::account(&account) })))
}

pub async fn me(caller: Caller) -> Json<Value> {
    Json(json!({ "account": views::account(&caller.account), "token": caller.token_id }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    code: String,
    password: String,
}

/// Hashes a password off the async threads: argon2 is deliberately slow.
async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub async fn redeem(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    JsonBody(body): JsonBody<RedeemBody>,
) -> ApiResult<Json<Value>> {
    secrets::check_password(&body.password).map_err(|m| ApiError::invalid_field("password", m))?;
    let password_hash = hash_password(body.password).await?;
    let token = secrets::generate(secrets::TOKEN_PREFIX).map_err(ApiError::internal)?;
    let outcome = state
        .store
        .redeem_invitation(
            &secrets::digest(body.code.trim()),
            &password_hash,
            &secrets::digest(token.expose()),
            &peer.to_string(),
            state.clock.now(),
        )
        .await?;
    match outcome {
        Redemption::Redeemed { account, token: info } => Ok(Json(json!({
            "account": views::account(&account),
            "token": token.expose(),
            "token_id": info.id,
        }))),
        Redemption::AlreadyUsed { account } => Err(ApiError::conflict(format!(
            "this invitation for '{account}' was used already; the attempt is logged: ask an admin for a new one"
        ))),
        Redemption::Expired { account } => Err(ApiError::conflict(format!(
            "this invitation for '{account}' has expired: ask an admin for a new one"
        ))),
        Redemption::Unknown => {
            Err(ApiError::Unauthenticated("the invitation code is not valid".to_owned()))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    name: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    JsonBody(body): JsonBody<LoginBody>,
) -> ApiResult<Json<Value>> {
    let wrong = || ApiError::Unauthenticated("the name or the password is wrong".to_owned());
    if body.password.len() > secrets::MAX_PASSWORD_BYTES {
        return Err(wrong());
    }
    let found = state.store.password_hash(&body.name).await?;
    let Some((account, Some(stored))) = found else {
        tracing::warn!(security = true, name = %body.name, from = %peer, "login for an unknown account or one without a password");
        return Err(wrong());
    };
    let password = body.password;
    let matches = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &stored))
        .await
        .map_err(ApiError::internal)?;
    if !matches {
        tracing::warn!(security = true, name = %account.name, from = %peer, "wrong password");
        return Err(wrong());
    }
    let token = secrets::generate(secrets::TOKEN_PREFIX).map_err(ApiError::internal)?;
    let info = state
        .store
        .record_login(
            &account,
            &secrets::digest(token.expose()),
            &peer.to_string(),
            state.clock.now(),
        )
        .await?;
    Ok(Json(
        json!({ "account": views::account(&account), "token": token.expose(), "token_id": info.id }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    label: Option<String>,
}

pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<TokenBody>,
) -> ApiResult<Json<Value>> {
    let label = body
        .label
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "cli".to_owned());
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "label",
            "label must be up to 100 printable characters",
        ));
    }
    let token = secrets::generate(secrets::TOKEN_PREFIX).map_err(ApiError::internal)?;
    let info = state
        .store
        .create_token(&caller.account, &secrets::digest(token.expose()), &label, state.clock.now())
        .await?;
    Ok(Json(json!({ "token": token.expose(), "id": info.id, "label": info.label })))
}

pub async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let tokens: Vec<Value> =
        state.store.tokens(caller.account.id).await?.iter().map(views::token).collect();
    Ok(Json(json!({ "tokens": tokens })))
}

/// Revokes one of the caller's tokens; an admin may revoke anyone's.
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: i64 =
        id.parse().map_err(|_| ApiError::NotFound(format!("token '{id}' does not exist")))?;
    let owner = if caller.account.has(Role::Admin) { None } else { Some(caller.account.id) };
    let info = state.store.revoke_token(&caller.account, id, owner, state.clock.now()).await?;
    Ok(Json(json!({ "token": views::token(&info) })))
}
