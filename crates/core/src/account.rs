//! People: accounts, their names and e-mail addresses, and their roles.
//!
//! The rule kept here: the admin role excludes the four working roles, so an
//! account that manages others can never also act on an update request.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The database identity of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    SecurityOfficer,
    Operator,
    Owner,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] =
        [Role::SecurityOfficer, Role::Operator, Role::Owner, Role::Auditor, Role::Admin];

    /// The spelling used by the CLI, the API and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SecurityOfficer => "security-officer",
            Role::Operator => "operator",
            Role::Owner => "owner",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| {
            format!(
                "unknown role '{s}': expected one of security-officer, operator, owner, auditor, admin"
            )
        })
    }
}

/// A non-empty set of roles that never mixes admin with a working role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Role>", into = "Vec<Role>")]
pub struct Roles(BTreeSet<Role>);

impl Roles {
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Result<Self, String> {
        let roles: BTreeSet<Role> = roles.into_iter().collect();
        if roles.is_empty() {
            return Err("an account needs at least one role".to_owned());
        }
        let working = roles.iter().any(|role| !matches!(role, Role::Admin | Role::Auditor));
        if roles.contains(&Role::Admin) && working {
            return Err(
                "the admin role excludes security-officer, operator and owner: use two accounts"
                    .to_owned(),
            );
        }
        Ok(Self(roles))
    }

    /// A set holding one role, which is always valid.
    pub fn only(role: Role) -> Self {
        Self(BTreeSet::from([role]))
    }

    /// Parses a comma-separated list such as `owner,operator`.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let roles = list
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Role::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(roles)
    }

    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }
}

impl TryFrom<Vec<Role>> for Roles {
    type Error = String;

    fn try_from(roles: Vec<Role>) -> Result<Self, Self::Error> {
        Self::new(roles)
    }
}

impl From<Roles> for Vec<Role> {
    fn from(roles: Roles) -> Self {
        roles.0.into_iter().collect()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// A login name: lowercase letters, digits, `.`, `_` and `-`, starting with a letter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !starts_with_letter || !rest_ok || raw.len() > 64 {
            return Err(format!(
                "account name '{raw}' is invalid: use 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AccountName {
    /// The name the product itself acts under in the control log.
    pub fn product() -> Self {
        Self(PRODUCT_ACTOR.to_owned())
    }

    /// The name of the first account of every installation.
    pub fn admin() -> Self {
        Self("admin".to_owned())
    }
}

impl TryFrom<String> for AccountName {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<AccountName> for String {
    fn from(name: AccountName) -> Self {
        name.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, checked for shape only: one `@`, a dotted domain, no spaces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let invalid = || format!("e-mail address '{raw}' is invalid");
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        let shape_ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && raw.len() <= 254
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
        if !shape_ok {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person who uses Patchwarden.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: AccountName,
    pub email: Option<Email>,
    pub position: Option<String>,
    pub roles: Roles,
}

/// The actor name of the product's own steps, taken on its agents' evidence.
pub const PRODUCT_ACTOR: &str = "patchwarden";

impl AccountId {
    /// Stands for the product in sign-offs it records; no account has it.
    pub const PRODUCT: AccountId = AccountId(0);
}

impl Account {
    /// The product, as the actor of the steps it takes on its agents' evidence.
    /// It holds no role, so no person's step can be taken in its name.
    pub fn product() -> Self {
        Self {
            id: AccountId::PRODUCT,
            name: AccountName::product(),
            email: None,
            position: None,
            roles: Roles(std::collections::BTreeSet::new()),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.has(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_cannot_hold_a_working_role() {
        let err = Roles::parse_list("admin,owner").unwrap_err();
        assert!(err.contains("admin role excludes"), "{err}");
        assert!(Roles::parse_list("admin").is_ok());
        assert!(Roles::parse_list("admin,auditor").is_ok());
        assert!(Roles::parse_list("owner,operator,security-officer").is_ok());
    }

    #[test]
    fn unknown_role_is_named() {
        let err = Roles::parse_list("owner,boss").unwrap_err();
        assert!(err.starts_with("unknown role 'boss'"), "{err}");
    }

    #[test]
    fn empty_role_list_is_refused() {
        assert_eq!(Roles::parse_list(" , ").unwrap_err(), "an account needs at least one role");
    }

    #[test]
    fn account_names_are_checked() {
        assert!(AccountName::parse("alice.smith-2").is_ok());
        for bad in ["", "Alice", "1alice", "al ice", "al/ice"] {
            assert!(AccountName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn email_shape_is_checked() {
        assert!(Email::parse("ops@example.org").is_ok());
        for bad in
            ["ops", "@example.org", "ops@example", "ops@.org", "o ps@example.org", "a@b@c.org"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
