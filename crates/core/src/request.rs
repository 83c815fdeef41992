//! The update request: the one record that carries everything the policy asks
//! of an update, from the first draft to the closing entry.
//!
//! The types here hold data and check single fields; whether a request may
//! move is decided in `lifecycle`. A draft may have gaps; `missing_fields`
//! names them so that submit can refuse a request with every gap listed.

use std::fmt;

use jiff::Timestamp;
use patchwarden_versions::Format;
use serde::{Deserialize, Serialize};

use crate::account::{AccountId, Email};
use crate::lifecycle::State;
use crate::system::{EnvironmentKind, SystemId};
use crate::text::Text;

/// The database identity of an update request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub i64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A package and the exact version the request will install.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackageTarget {
    pub name: String,
    pub version: String,
}

impl PackageTarget {
    /// Parses `NAME=VERSION`: a package name as dpkg and rpm allow it, and a
    /// version that is valid by dpkg's rules or by rpm's (which one applies
    /// depends on the endpoints, which the request does not know).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (name, version) = raw
            .split_once('=')
            .ok_or_else(|| format!("package '{raw}' must be written NAME=VERSION"))?;
        let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c));
        if !name_ok {
            return Err(format!("package name '{name}' is invalid"));
        }
        if version.len() > 128 {
            return Err(format!("version of package '{name}' is longer than 128 characters"));
        }
        let deb = Format::Deb.validate(version);
        let rpm = Format::Rpm.validate(version);
        if let (Err(deb), Err(rpm)) = (deb, rpm) {
            return Err(format!("package '{name}': {deb}; as rpm: {rpm}"));
        }
        Ok(Self { name: name.to_owned(), version: version.to_owned() })
    }
}

impl fmt::Display for PackageTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.version)
    }
}

/// The fields a requester writes; all optional while the request is a draft.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFields {
    pub officer: Option<AccountId>,
    pub operator: Option<AccountId>,
    pub test_date: Option<Timestamp>,
    pub prod_date: Option<Timestamp>,
    #[serde(default)]
    pub packages: Vec<PackageTarget>,
    pub purpose: Option<Text>,
    pub downtime: Option<Text>,
    pub description: Option<Text>,
}

impl RequestFields {
    /// Overlays the fields that `amendment` sets onto these.
    pub fn amend(&mut self, amendment: RequestFields) {
        let RequestFields {
            officer,
            operator,
            test_date,
            prod_date,
            packages,
            purpose,
            downtime,
            description,
        } = amendment;
        self.officer = officer.or(self.officer);
        self.operator = operator.or(self.operator);
        self.test_date = test_date.or(self.test_date);
        self.prod_date = prod_date.or(self.prod_date);
        if !packages.is_empty() {
            self.packages = packages;
        }
        self.purpose = purpose.or(self.purpose.take());
        self.downtime = downtime.or(self.downtime.take());
        self.description = description.or(self.description.take());
    }

    /// The name of every field a request needs before it can be submitted.
    pub fn missing_fields(&self) -> Vec<String> {
        let present = [
            ("officer", self.officer.is_some()),
            ("operator", self.operator.is_some()),
            ("test_date", self.test_date.is_some()),
            ("prod_date", self.prod_date.is_some()),
            ("packages", !self.packages.is_empty()),
            ("purpose", self.purpose.is_some()),
            ("downtime", self.downtime.is_some()),
            ("description", self.description.is_some()),
        ];
        present.iter().filter(|(_, ok)| !ok).map(|(name, _)| (*name).to_owned()).collect()
    }
}

/// Who did something, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signoff {
    pub by: AccountId,
    pub at: Timestamp,
}

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

impl std::str::FromStr for Criticality {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Criticality::Low),
            "medium" => Ok(Criticality::Medium),
            "high" => Ok(Criticality::High),
            "critical" => Ok(Criticality::Critical),
            other => Err(format!(
                "unknown criticality '{other}': expected low, medium, high or critical"
            )),
        }
    }
}

/// What a person reports when they find a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProblem {
    pub description: Text,
    pub criticality: Criticality,
    pub environment: EnvironmentKind,
}

/// A problem found in test or production.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub number: u32,
    pub description: Text,
    pub criticality: Criticality,
    pub environment: EnvironmentKind,
    pub found_by: AccountId,
    pub found_at: Timestamp,
}

/// The decisions a failed test or a failed production update calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// After a failed test: go on to production with the risk accepted.
    Proceed,
    /// After a failed test: give the update up.
    Abandon,
    /// After a failed production update: put the old versions back.
    RollBack,
    /// After a failed production update: keep it, with the reasoning recorded.
    Accept,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Proceed => "proceed",
            DecisionKind::Abandon => "abandon",
            DecisionKind::RollBack => "roll-back",
            DecisionKind::Accept => "accept",
        }
    }

    /// Whether both the update officer and the owner must take it.
    pub fn needs_officer_and_owner(self) -> bool {
        matches!(self, DecisionKind::Proceed | DecisionKind::Accept)
    }
}

impl std::str::FromStr for DecisionKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "proceed" => Ok(DecisionKind::Proceed),
            "abandon" => Ok(DecisionKind::Abandon),
            "roll-back" | "rollback" => Ok(DecisionKind::RollBack),
            "accept" => Ok(DecisionKind::Accept),
            other => Err(format!(
                "unknown decision '{other}': expected proceed, abandon, roll-back or accept"
            )),
        }
    }
}

/// A decision taken, with its reasoning and everyone who took it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: DecisionKind,
    pub reasoning: Text,
    pub taken_by: Vec<AccountId>,
    pub taken_at: Timestamp,
}

/// One party's half of a step that needs the update officer and the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConsent {
    pub decision: DecisionKind,
    pub reasoning: Text,
    pub officer: Option<Signoff>,
    pub owner: Option<Signoff>,
}

/// The outcome someone recorded for test or production work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkResult {
    pub passed: bool,
    pub notes: Option<Text>,
    pub recorded: Signoff,
}

/// What a person proposes for production work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    pub start: Timestamp,
    pub duration_minutes: u32,
    #[serde(default)]
    pub participants: Vec<AccountId>,
    #[serde(default)]
    pub recipients: Vec<Email>,
}

/// The production plan and how far it has been agreed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub start: Timestamp,
    pub duration_minutes: u32,
    pub participants: Vec<AccountId>,
    pub recipients: Vec<Email>,
    pub proposed: Signoff,
    pub officer_acceptance: Option<Signoff>,
    pub owner_acceptance: Option<Signoff>,
    pub approval: Option<Signoff>,
    /// When the announcement to the system's users was recorded as sent.
    pub announced_at: Option<Timestamp>,
}

/// An update request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub id: RequestId,
    pub system: SystemId,
    pub requester: AccountId,
    pub created_at: Timestamp,
    pub fields: RequestFields,
    pub state: State,
    pub paused: bool,
    pub owner_approval: Option<Signoff>,
    pub test_result: Option<WorkResult>,
    pub test_acknowledgement: Option<Signoff>,
    pub plan: Option<Plan>,
    pub presence: Option<Signoff>,
    pub production_start: Option<Signoff>,
    pub production_result: Option<WorkResult>,
    pub problems: Vec<Problem>,
    pub decisions: Vec<Decision>,
    pub pending_consent: Option<PendingConsent>,
    /// The documentation revision recorded for this request's update.
    pub documentation_revision: Option<u32>,
    /// Why it was rejected or cancelled.
    pub end_reason: Option<Text>,
}

impl UpdateRequest {
    /// A new draft filed by `requester`; the update officer defaults to them.
    pub fn draft(
        id: RequestId,
        system: SystemId,
        requester: AccountId,
        mut fields: RequestFields,
        now: Timestamp,
    ) -> Self {
        fields.officer = fields.officer.or(Some(requester));
        Self {
            id,
            system,
            requester,
            created_at: now,
            fields,
            state: State::Draft,
            paused: false,
            owner_approval: None,
            test_result: None,
            test_acknowledgement: None,
            plan: None,
            presence: None,
            production_start: None,
            production_result: None,
            problems: Vec::new(),
            decisions: Vec::new(),
            pending_consent: None,
            documentation_revision: None,
            end_reason: None,
        }
    }

    /// The request's update officer, who defaults to the requester.
    pub fn officer(&self) -> AccountId {
        self.fields.officer.unwrap_or(self.requester)
    }

    /// Whether a decision of `kind` has been taken on this request.
    pub fn decided(&self, kind: DecisionKind) -> bool {
        self.decisions.iter().any(|decision| decision.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_targets_parse() {
        let target = PackageTarget::parse("openssl=3.0.15-1~deb12u1").unwrap();
        assert_eq!(target.name, "openssl");
        assert_eq!(target.version, "3.0.15-1~deb12u1");
        assert!(PackageTarget::parse("openssl").unwrap_err().contains("NAME=VERSION"));
        assert!(PackageTarget::parse("open ssl=1").unwrap_err().contains("package name"));
        assert!(PackageTarget::parse("openssl=").unwrap_err().contains("invalid deb version \"\""));
    }

    #[test]
    fn missing_fields_are_each_named() {
        let fields = RequestFields {
            officer: Some(AccountId(1)),
            purpose: Some(Text::parse("purpose", "fix CVE").unwrap()),
            ..RequestFields::default()
        };
        assert_eq!(
            fields.missing_fields(),
            ["operator", "test_date", "prod_date", "packages", "downtime", "description"]
        );
    }

    #[test]
    fn amending_keeps_what_the_amendment_leaves_out() {
        let mut fields = RequestFields {
            operator: Some(AccountId(3)),
            purpose: Some(Text::parse("purpose", "a").unwrap()),
            ..RequestFields::default()
        };
        fields.amend(RequestFields {
            purpose: Some(Text::parse("purpose", "b").unwrap()),
            ..RequestFields::default()
        });
        assert_eq!(fields.operator, Some(AccountId(3)));
        assert_eq!(fields.purpose.unwrap().as_str(), "b");
    }
}
