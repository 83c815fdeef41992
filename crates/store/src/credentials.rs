//! Credentials: invitations, passwords and API tokens, stored only as hashes.
//!
//! The store never sees a secret in clear: callers hash invitation codes and
//! tokens (SHA-256) and passwords (argon2id) before they arrive here. Issuing,
//! redeeming and revoking are logged; a second attempt to redeem an invitation
//! is logged as a security event and refused.

use jiff::Timestamp;
use patchwarden_core::{Account, AccountId, LogDraft};
use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction};

use crate::accounts::{ACCOUNT_COLUMNS, account_from_row};
use crate::{Store, StoreError, StoreResult, from_micros, log, policy, to_micros};

/// An API token's public facts; the secret itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub account: AccountId,
    pub label: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// What became of an attempt to redeem an invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The account now has its password and its first token.
    Redeemed { account: Account, token: TokenInfo },
    /// The code was used before: refused and logged as a security event.
    AlreadyUsed { account: String },
    /// The code expired: refused and logged.
    Expired { account: String },
    /// No invitation has that code.
    Unknown,
}

pub(crate) async fn log_event(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    actor: &str,
    action: &str,
    details: Value,
    now: Timestamp,
) -> StoreResult<()> {
    let mut head = log::lock_head(store, tx).await?;
    let draft = LogDraft {
        at: now,
        actor: actor.to_owned(),
        action: action.to_owned(),
        request: None,
        system: None,
        state_before: None,
        state_after: None,
        details,
        policy_version: policy::current_number(tx).await?,
    };
    log::append(store, tx, &mut head, draft).await?;
    Ok(())
}

async fn insert_token(
    tx: &mut Transaction<'static, Any>,
    account: AccountId,
    token_hash: &str,
    label: &str,
    now: Timestamp,
) -> StoreResult<TokenInfo> {
    let row = sqlx::query(
        "INSERT INTO api_tokens (account_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(account.0)
    .bind(token_hash.to_owned())
    .bind(label.to_owned())
    .bind(to_micros(now))
    .fetch_one(&mut **tx)
    .await?;
    Ok(TokenInfo {
        id: row.try_get(0)?,
        account,
        label: label.to_owned(),
        created_at: now,
        revoked_at: None,
    })
}

fn token_from_row(row: &sqlx::any::AnyRow) -> StoreResult<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        account: AccountId(row.try_get("account_id")?),
        label: row.try_get("label")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_micros).transpose()?,
    })
}

impl Store {
    /// Issues an invitation for `account`, replacing any it had not redeemed.
    pub async fn issue_invitation(
        &self,
        actor: &str,
        account: AccountId,
        code_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let name: String = sqlx::query("SELECT name FROM accounts WHERE id = $1")
            .bind(account.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account {account} does not exist")))?
            .try_get(0)?;
        sqlx::query(
            "UPDATE invitations SET expires_at = $1 WHERE account_id = $2 AND redeemed_at IS NULL AND expires_at > $1",
        )
        .bind(to_micros(now))
        .bind(account.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO invitations (account_id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account.0)
        .bind(code_hash.to_owned())
        .bind(to_micros(now))
        .bind(to_micros(expires_at))
        .execute(&mut *tx)
        .await?;
        let details = json!({ "account": account, "name": name, "expires_at": expires_at });
        log_event(self, &mut tx, actor, "invitation-issue", details, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Redeems an invitation: sets the password and creates the first token.
    /// `from` is the client's address, recorded in the log.
    pub async fn redeem_invitation(
        &self,
        code_hash: &str,
        password_hash: &str,
        token_hash: &str,
        from: &str,
        now: Timestamp,
    ) -> StoreResult<Redemption> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT i.id, i.account_id, i.expires_at, i.redeemed_at, i.redeemed_from, a.name \
             FROM invitations i JOIN accounts a ON a.id = i.account_id WHERE i.code_hash = $1",
        )
        .bind(code_hash.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Redemption::Unknown);
        };
        let invitation: i64 = row.try_get(0)?;
        let account_id = AccountId(row.try_get(1)?);
        let expires_at = from_micros(row.try_get(2)?)?;
        let redeemed_at = row.try_get::<Option<i64>, _>(3)?.map(from_micros).transpose()?;
        let redeemed_from: Option<String> = row.try_get(4)?;
        let name: String = row.try_get(5)?;

        if let Some(redeemed_at) = redeemed_at {
            let details = json!({
                "account": account_id,
                "name": name,
                "attempt_from": from,
                "redeemed_at": redeemed_at,
                "redeemed_from": redeemed_from,
            });
            log_event(self, &mut tx, "anonymous", "invitation-reuse", details, now).await?;
            tx.commit().await?;
            tracing::warn!(security = true, account = %name, from, "used invitation presented again");
            return Ok(Redemption::AlreadyUsed { account: name });
        }
        if expires_at <= now {
            let details = json!({ "account": account_id, "name": name, "attempt_from": from, "expired_at": expires_at });
            log_event(self, &mut tx, "anonymous", "invitation-expired", details, now).await?;
            tx.commit().await?;
            return Ok(Redemption::Expired { account: name });
        }

        sqlx::query("UPDATE invitations SET redeemed_at = $1, redeemed_from = $2 WHERE id = $3")
            .bind(to_micros(now))
            .bind(from.to_owned())
            .bind(invitation)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
            .bind(password_hash.to_owned())
            .bind(account_id.0)
            .execute(&mut *tx)
            .await?;
        let token = insert_token(&mut tx, account_id, token_hash, "first token", now).await?;
        let details =
            json!({ "account": account_id, "name": name, "from": from, "token": token.id });
        log_event(self, &mut tx, &name, "invitation-redeem", details, now).await?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let account_row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id.0).fetch_one(&mut *tx).await?;
        let account = account_from_row(&account_row)?;
        tx.commit().await?;
        Ok(Redemption::Redeemed { account, token })
    }

    /// Creates another API token for `account` itself.
    pub async fn create_token(
        &self,
        account: &Account,
        token_hash: &str,
        label: &str,
        now: Timestamp,
    ) -> StoreResult<TokenInfo> {
        let mut tx = self.begin_write().await?;
        let token = insert_token(&mut tx, account.id, token_hash, label, now).await?;
        let details = json!({ "account": account.id, "token": token.id, "label": label });
        log_event(self, &mut tx, account.name.as_str(), "token-create", details, now).await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn tokens(&self, account: AccountId) -> StoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, account_id, label, created_at, revoked_at FROM api_tokens WHERE account_id = $1 ORDER BY id",
        )
        .bind(account.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes token `id`; with `owner` set, only if it belongs to that account.
    pub async fn revoke_token(
        &self,
        actor: &Account,
        id: i64,
        owner: Option<AccountId>,
        now: Timestamp,
    ) -> StoreResult<TokenInfo> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, account_id, label, created_at, revoked_at FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let token = match row.map(|row| token_from_row(&row)).transpose()? {
            Some(token) if owner.is_none_or(|owner| owner == token.account) => token,
            _ => return Err(StoreError::NotFound(format!("token {id} does not exist"))),
        };
        if token.revoked_at.is_some() {
            return Err(StoreError::Invalid(format!("token {id} is revoked already")));
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(to_micros(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let details = json!({ "account": token.account, "token": id });
        log_event(self, &mut tx, actor.name.as_str(), "token-revoke", details, now).await?;
        tx.commit().await?;
        Ok(TokenInfo { revoked_at: Some(now), ..token })
    }

    /// The account holding an unrevoked token with this hash.
    pub async fn authenticate(&self, token_hash: &str) -> StoreResult<Option<(Account, i64)>> {
        let sql = format!(
            "SELECT t.id AS token_id, {} FROM api_tokens t JOIN accounts a ON a.id = t.account_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
            ACCOUNT_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| Ok((account_from_row(&row)?, row.try_get("token_id")?))).transpose()
    }

    /// The account and its password hash, for a login by name.
    pub async fn password_hash(
        &self,
        name: &str,
    ) -> StoreResult<Option<(Account, Option<String>)>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| Ok((account_from_row(&row)?, row.try_get("password_hash")?))).transpose()
    }

    /// Records a login that issued a token.
    pub async fn record_login(
        &self,
        account: &Account,
        token_hash: &str,
        from: &str,
        now: Timestamp,
    ) -> StoreResult<TokenInfo> {
        let mut tx = self.begin_write().await?;
        let token = insert_token(&mut tx, account.id, token_hash, "login", now).await?;
        let details = json!({ "account": account.id, "token": token.id, "from": from });
        log_event(self, &mut tx, account.name.as_str(), "login", details, now).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// On a database with no accounts, creates `admin` holding the given token.
    /// Returns whether it did.
    pub async fn bootstrap_admin_with_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        if !self.accounts().await?.is_empty() {
            return Ok(false);
        }
        let admin = self.create_account("patchwarden", crate::NewAccount::admin(), now).await?;
        let mut tx = self.begin_write().await?;
        insert_token(&mut tx, admin.id, token_hash, "bootstrap", now).await?;
        log_event(
            self,
            &mut tx,
            "patchwarden",
            "token-create",
            json!({ "account": admin.id, "label": "bootstrap" }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
