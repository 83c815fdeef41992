//! The policy over HTTP: the version in force, its history, and changes by
//! admins, each change a new numbered version with its author and reason.

use axum::Json;
use axum::extract::State;
use patchwarden_core::policy::PolicyChange;
use patchwarden_core::text::Text;
use patchwarden_core::{PolicySettings, PolicyVersion, Role};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, instant};

fn view(version: &PolicyVersion) -> Value {
    json!({
        "number": version.number,
        "effective": version.effective,
        "author_name": version.author_name,
        "author_position": version.author_position,
        "reason": version.reason,
        "settings": version.settings,
    })
}

pub async fn show(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "policy": view(&state.store.policy().await?) })))
}

pub async fn history(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Value>> {
    let versions: Vec<Value> = state.store.policy_history().await?.iter().map(view).collect();
    Ok(Json(json!({ "versions": versions })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    /// Settings by dotted name, such as `notice_hours` or `approval.owner_only`.
    set: Map<String, Value>,
    reason: String,
    effective: Option<String>,
}

/// Applies dotted settings onto `settings`; an unknown name is an error.
pub fn apply_settings(
    settings: &PolicySettings,
    set: &Map<String, Value>,
) -> Result<PolicySettings, String> {
    let mut tree = serde_json::to_value(settings).map_err(|err| err.to_string())?;
    for (name, value) in set {
        let mut node = &mut tree;
        for part in name.split('.') {
            node = node.get_mut(part).ok_or_else(|| format!("unknown policy setting '{name}'"))?;
        }
        if node.is_object() {
            return Err(format!(
                "'{name}' is a group of settings: set its members, such as '{name}.…'"
            ));
        }
        *node = value.clone();
    }
    serde_json::from_value(tree)
        .map_err(|err| format!("a policy setting has the wrong type: {err}"))
}

pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    raw: RawBody,
) -> ApiResult<Json<Value>> {
    caller.require_any(&[Role::Admin], "change the policy")?;
    let body: ChangeBody = raw.parse()?;
    if body.set.is_empty() {
        return Err(ApiError::invalid_field("set", "name at least one setting to change"));
    }
    let current = state.store.policy().await?;
    let settings = apply_settings(&current.settings, &body.set)
        .map_err(|m| ApiError::invalid_field("set", m))?;
    let now = state.clock.now();
    let effective = match &body.effective {
        Some(raw) => {
            instant::parse("effective", raw).map_err(|m| ApiError::invalid_field("effective", m))?
        }
        None => now,
    };
    let position = caller.account.position.clone().ok_or_else(|| {
        ApiError::invalid(format!(
            "account '{}' has no position, and a policy version records its author's position",
            caller.account.name
        ))
    })?;
    let change = PolicyChange {
        author_name: caller.account.name.to_string(),
        author_position: position,
        reason: Text::parse("reason", &body.reason)
            .map_err(|m| ApiError::invalid_field("reason", m))?,
        effective,
        settings,
    };
    let version = state.store.change_policy(caller.account.name.as_str(), change, now).await?;
    Ok(Json(json!({ "policy": view(&version) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_settings_change_one_value() {
        let set: Map<String, Value> =
            serde_json::from_str(r#"{"notice_hours": 48, "approval.owner_only": true}"#).unwrap();
        let changed = apply_settings(&PolicySettings::default(), &set).unwrap();
        assert_eq!(changed.notice_hours, 48);
        assert!(changed.approval.owner_only);
    }

    #[test]
    fn unknown_and_mistyped_settings_are_refused() {
        let unknown: Map<String, Value> = serde_json::from_str(r#"{"notice_days": 2}"#).unwrap();
        assert_eq!(
            apply_settings(&PolicySettings::default(), &unknown).unwrap_err(),
            "unknown policy setting 'notice_days'"
        );
        let mistyped: Map<String, Value> =
            serde_json::from_str(r#"{"notice_hours": "soon"}"#).unwrap();
        assert!(
            apply_settings(&PolicySettings::default(), &mistyped)
                .unwrap_err()
                .contains("wrong type")
        );
        let group: Map<String, Value> = serde_json::from_str(r#"{"approval": true}"#).unwrap();
        assert!(apply_settings(&PolicySettings::default(), &group).unwrap_err().contains("group"));
    }
}
