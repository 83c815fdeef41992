//! The organisation's patch management policy as numbered versions.
//!
//! Rules kept here: every change of a setting makes a new version with its
//! author, position, reason and effective date; a change that alters nothing is
//! refused; approval rules can only narrow the built-in separation of duties,
//! because each of them is a restriction that can be switched on, never a
//! permission.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::text::Text;

/// Days allowed to remediate a vulnerability of each severity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationDeadlines {
    pub critical_days: u32,
    pub high_days: u32,
    pub medium_days: u32,
    pub low_days: u32,
}

impl Default for RemediationDeadlines {
    fn default() -> Self {
        Self { critical_days: 7, high_days: 30, medium_days: 90, low_days: 180 }
    }
}

/// Restrictions added on top of the separation of duties the product always
/// enforces (requester, approving owner and operator are three people; only
/// the owner or deputy approves; an admin never acts on a request).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRules {
    /// Only the system's owner acts as owner; the deputy may not.
    pub owner_only: bool,
    /// The update officer must be a different person from the requester.
    pub officer_not_requester: bool,
}

/// The settings a policy version fixes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// How long before production work the system's users must be told.
    pub notice_hours: u32,
    /// How long test work lasts when no window says otherwise.
    pub default_work_hours: u32,
    pub approval: ApprovalRules,
    pub remediation: RemediationDeadlines,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            notice_hours: 24,
            default_work_hours: 4,
            approval: ApprovalRules::default(),
            remediation: RemediationDeadlines::default(),
        }
    }
}

impl PolicySettings {
    /// Checks every setting's range and returns each problem found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !(1..=24 * 365).contains(&self.notice_hours) {
            problems.push(format!("notice_hours {} must be 1 to 8760", self.notice_hours));
        }
        if !(1..=72).contains(&self.default_work_hours) {
            problems
                .push(format!("default_work_hours {} must be 1 to 72", self.default_work_hours));
        }
        let deadlines = [
            ("critical_days", self.remediation.critical_days),
            ("high_days", self.remediation.high_days),
            ("medium_days", self.remediation.medium_days),
            ("low_days", self.remediation.low_days),
        ];
        for (name, days) in deadlines {
            if !(1..=3650).contains(&days) {
                problems.push(format!("remediation.{name} {days} must be 1 to 3650"));
            }
        }
        let ordered = self.remediation.critical_days <= self.remediation.high_days
            && self.remediation.high_days <= self.remediation.medium_days
            && self.remediation.medium_days <= self.remediation.low_days;
        if !ordered {
            problems
                .push("remediation deadlines must not grow shorter as severity falls".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Whether the deputy may act where the owner may.
    pub fn deputy_may_act(&self) -> bool {
        !self.approval.owner_only
    }
}

/// One version of the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub number: u32,
    pub effective: Timestamp,
    pub author_name: String,
    pub author_position: String,
    pub reason: Text,
    pub settings: PolicySettings,
}

/// Who changes the policy and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyChange {
    pub author_name: String,
    pub author_position: String,
    pub reason: Text,
    pub effective: Timestamp,
    pub settings: PolicySettings,
}

impl PolicyVersion {
    /// The version every new database starts with.
    pub fn initial(effective: Timestamp) -> Self {
        Self {
            number: 1,
            effective,
            author_name: "patchwarden".to_owned(),
            author_position: "built-in defaults".to_owned(),
            reason: Text::literal("initial policy with the built-in defaults"),
            settings: PolicySettings::default(),
        }
    }

    /// Makes the next version; refuses a change that alters no setting.
    pub fn next(&self, change: PolicyChange) -> Result<PolicyVersion, Vec<String>> {
        change.settings.validate()?;
        let mut problems = Vec::new();
        if change.settings == self.settings {
            problems.push(format!("the settings are those of version {} already", self.number));
        }
        if change.author_name.trim().is_empty() {
            problems.push("the author's name is empty".to_owned());
        }
        if change.author_position.trim().is_empty() {
            problems.push("the author's position is empty".to_owned());
        }
        if change.effective < self.effective {
            problems.push(format!(
                "effective date {} is before version {}'s {}",
                change.effective, self.number, self.effective
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(PolicyVersion {
            number: self.number + 1,
            effective: change.effective,
            author_name: change.author_name.trim().to_owned(),
            author_position: change.author_position.trim().to_owned(),
            reason: change.reason,
            settings: change.settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(settings: PolicySettings) -> PolicyChange {
        PolicyChange {
            author_name: "Dana Reyes".to_owned(),
            author_position: "CISO".to_owned(),
            reason: Text::parse("reason", "longer notice for payroll").unwrap(),
            effective: Timestamp::from_second(2_000_000_000).unwrap(),
            settings,
        }
    }

    #[test]
    fn defaults_are_the_policy_template() {
        let first = PolicyVersion::initial(Timestamp::UNIX_EPOCH);
        assert_eq!(first.number, 1);
        assert_eq!(first.settings.notice_hours, 24);
        assert!(first.settings.deputy_may_act());
        assert!(first.settings.validate().is_ok());
    }

    #[test]
    fn changing_a_setting_makes_the_next_version() {
        let first = PolicyVersion::initial(Timestamp::UNIX_EPOCH);
        let settings = PolicySettings { notice_hours: 48, ..PolicySettings::default() };
        let second = first.next(change(settings)).unwrap();
        assert_eq!(second.number, 2);
        assert_eq!(second.settings.notice_hours, 48);
        assert_eq!(second.author_position, "CISO");
    }

    #[test]
    fn a_change_that_alters_nothing_is_refused() {
        let first = PolicyVersion::initial(Timestamp::UNIX_EPOCH);
        let err = first.next(change(PolicySettings::default())).unwrap_err();
        assert_eq!(err, vec!["the settings are those of version 1 already".to_owned()]);
    }

    #[test]
    fn out_of_range_settings_are_each_named() {
        let settings = PolicySettings {
            notice_hours: 0,
            remediation: RemediationDeadlines { critical_days: 0, ..Default::default() },
            ..PolicySettings::default()
        };
        let err = settings.validate().unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].starts_with("notice_hours 0"));
        assert!(err[1].starts_with("remediation.critical_days 0"));
    }

    #[test]
    fn unknown_setting_keys_are_refused() {
        let raw = r#"{"notice_hours":24,"default_work_hours":4,"approval":{"owner_only":false,"officer_not_requester":false,"anyone_may_approve":true},"remediation":{"critical_days":7,"high_days":30,"medium_days":90,"low_days":180}}"#;
        let err = serde_json::from_str::<PolicySettings>(raw).unwrap_err();
        assert!(err.to_string().contains("anyone_may_approve"), "{err}");
    }
}
