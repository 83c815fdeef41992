//! Information systems: who owns them, who hears of their downtime, their two
//! environments and their numbered documentation revisions.
//!
//! The rule kept here: a system always has an owner, the deputy is a different
//! person, and documentation revisions are numbered 1, 2, 3 without gaps.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::account::{AccountId, Email};
use crate::request::RequestId;
use crate::text::Text;

/// The database identity of a system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SystemId(pub i64);

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A system's name: letters, digits, `.`, `_` and `-`, 1 to 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SystemName(String);

impl SystemName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            return Err(format!(
                "system name '{raw}' is invalid: use 1 to 64 letters, digits, '.', '_' or '-'"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SystemName {
    /// The name given to a machine's own system when its host name will not do.
    pub fn this_machine() -> Self {
        Self("this-machine".to_owned())
    }
}

impl TryFrom<String> for SystemName {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<SystemName> for String {
    fn from(name: SystemName) -> Self {
        name.0
    }
}

impl fmt::Display for SystemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone name such as `Europe/Berlin` or `UTC`, checked for shape.
///
/// Whether the zone exists is checked where the time zone database is read,
/// outside the core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

impl TimeZoneName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && !raw.starts_with('/')
            && !raw.contains("..")
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
        if !ok {
            return Err(format!(
                "time zone '{raw}' is not an IANA zone name such as Europe/Berlin"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TimeZoneName {
    fn default() -> Self {
        Self("UTC".to_owned())
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TimeZoneName> for String {
    fn from(zone: TimeZoneName) -> Self {
        zone.0
    }
}

/// The two environments every system has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentKind {
    Test,
    Prod,
}

impl EnvironmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentKind::Test => "test",
            EnvironmentKind::Prod => "prod",
        }
    }
}

impl FromStr for EnvironmentKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(EnvironmentKind::Test),
            "prod" | "production" => Ok(EnvironmentKind::Prod),
            other => Err(format!("unknown environment '{other}': expected test or prod")),
        }
    }
}

impl fmt::Display for EnvironmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a new system is created with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSystem {
    pub name: SystemName,
    pub owner: AccountId,
    pub deputy: Option<AccountId>,
    pub stakeholders: Vec<AccountId>,
    pub notify: Vec<Email>,
    pub time_zone: TimeZoneName,
}

impl NewSystem {
    /// Checks the rules that need no other records: the deputy is not the owner.
    pub fn validate(&self) -> Result<(), String> {
        if self.deputy == Some(self.owner) {
            return Err("the deputy must be a different person from the owner".to_owned());
        }
        Ok(())
    }
}

/// An information system under the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    pub id: SystemId,
    pub name: SystemName,
    pub owner: AccountId,
    pub deputy: Option<AccountId>,
    pub stakeholders: Vec<AccountId>,
    pub notify: Vec<Email>,
    pub time_zone: TimeZoneName,
    /// The number of the newest documentation revision; 0 before the first.
    pub documentation_revision: u32,
}

impl System {
    /// Whether `account` is this system's owner, or its deputy when deputies may act.
    pub fn is_owner(&self, account: AccountId, deputy_may_act: bool) -> bool {
        self.owner == account || (deputy_may_act && self.deputy == Some(account))
    }
}

/// One numbered revision of a system's technical documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentationRevision {
    pub system: SystemId,
    pub number: u32,
    pub summary: Text,
    pub request: Option<RequestId>,
    pub recorded_by: AccountId,
    pub recorded_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deputy_must_differ_from_owner() {
        let system = NewSystem {
            name: SystemName::parse("payroll").unwrap(),
            owner: AccountId(1),
            deputy: Some(AccountId(1)),
            stakeholders: vec![],
            notify: vec![],
            time_zone: TimeZoneName::default(),
        };
        assert!(system.validate().is_err());
    }

    #[test]
    fn time_zone_names_are_checked_for_shape() {
        assert!(TimeZoneName::parse("Europe/Berlin").is_ok());
        assert!(TimeZoneName::parse("America/Argentina/Buenos_Aires").is_ok());
        for bad in ["", "/etc/passwd", "Europe/../x", "Europe Berlin"] {
            assert!(TimeZoneName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn environment_spellings() {
        assert_eq!("prod".parse::<EnvironmentKind>().unwrap(), EnvironmentKind::Prod);
        assert!("staging".parse::<EnvironmentKind>().is_err());
    }
}
