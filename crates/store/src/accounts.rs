//! Accounts: creating them (logged) and looking them up.

use jiff::Timestamp;
use patchwarden_core::{Account, AccountId, AccountName, Email, LogDraft, Roles};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, StoreResult, log, policy, to_micros};

/// What a new account is created with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub name: AccountName,
    pub email: Option<Email>,
    pub position: Option<String>,
    pub roles: Roles,
}

impl NewAccount {
    /// The first account of a new installation.
    pub fn admin() -> Self {
        Self {
            name: AccountName::admin(),
            email: None,
            position: Some("administrator".to_owned()),
            roles: Roles::only(patchwarden_core::Role::Admin),
        }
    }
}

pub(crate) const ACCOUNT_COLUMNS: &str = "id, name, email, position, roles";

pub(crate) fn account_from_row(row: &AnyRow) -> StoreResult<Account> {
    let id: i64 = row.try_get("id")?;
    let bad = |what: String| StoreError::integrity(format!("account {id}: {what}"));
    let name: String = row.try_get("name")?;
    let email: Option<String> = row.try_get("email")?;
    let roles: String = row.try_get("roles")?;
    Ok(Account {
        id: AccountId(id),
        name: AccountName::parse(&name).map_err(bad)?,
        email: email.map(|e| Email::parse(&e)).transpose().map_err(bad)?,
        position: row.try_get("position")?,
        roles: Roles::parse_list(&roles).map_err(bad)?,
    })
}

impl Store {
    /// Creates an account; `actor` is the name recorded in the log.
    pub async fn create_account(
        &self,
        actor: &str,
        new: NewAccount,
        now: Timestamp,
    ) -> StoreResult<Account> {
        let mut tx = self.begin_write().await?;
        let mut head = log::lock_head(self, &mut tx).await?;
        let taken = sqlx::query("SELECT id FROM accounts WHERE name = $1")
            .bind(new.name.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Invalid(format!("account name '{}' is taken", new.name)));
        }
        let position = new.position.as_deref().map(str::trim).filter(|p| !p.is_empty());
        let row = sqlx::query(
            "INSERT INTO accounts (name, email, position, roles, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(new.name.as_str().to_owned())
        .bind(new.email.as_ref().map(|e| e.as_str().to_owned()))
        .bind(position.map(str::to_owned))
        .bind(new.roles.to_string())
        .bind(to_micros(now))
        .fetch_one(&mut *tx)
        .await?;
        let account = Account {
            id: AccountId(row.try_get(0)?),
            name: new.name,
            email: new.email,
            position: position.map(str::to_owned),
            roles: new.roles,
        };
        let policy_version = policy::current_number(&mut tx).await?;
        let draft = LogDraft {
            at: now,
            actor: actor.to_owned(),
            action: "account-create".to_owned(),
            request: None,
            system: None,
            state_before: None,
            state_after: None,
            details: json!({
                "account": account.id,
                "name": account.name,
                "email": account.email,
                "position": account.position,
                "roles": account.roles,
            }),
            policy_version,
        };
        log::append(self, &mut tx, &mut head, draft).await?;
        tx.commit().await?;
        Ok(account)
    }

    pub async fn account(&self, id: AccountId) -> StoreResult<Account> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account {id} does not exist")))?;
        account_from_row(&row)
    }

    pub async fn account_by_name(&self, name: &str) -> StoreResult<Account> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account '{name}' does not exist")))?;
        account_from_row(&row)
    }

    pub async fn accounts(&self) -> StoreResult<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        rows.iter().map(account_from_row).collect()
    }
}
