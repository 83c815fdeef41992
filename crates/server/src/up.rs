//! `patchwarden up`: the product for a newcomer in one command.
//!
//! It serves plain HTTP on 127.0.0.1:8080 from a SQLite file in
//! `./patchwarden-data`, and on first start creates a system for this machine
//! with a demo security officer, owner and operator, so that a new user can
//! walk a request through its lifecycle at once. The system's users are
//! stood for by one address under `.example`, which no mail can reach. Each
//! demo person who has not yet set a password gets a fresh invitation on
//! every start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use jiff::SignedDuration;
use patchwarden_core::system::{NewSystem, SystemName, TimeZoneName};
use patchwarden_core::{AccountName, Email, Roles};
use patchwarden_store::{NewAccount, Store, StoreError};

use crate::secrets::{self, Secret};
use crate::{Clock, Config, FirstAdmin, Running, ServeError};

/// The demo people: account name, roles, position.
const DEMO_PEOPLE: [(&str, &str, &str); 3] = [
    ("officer", "security-officer", "security officer"),
    ("owner", "owner", "system owner"),
    ("operator", "operator", "operator"),
];

/// An invitation `up` shows.
#[derive(Debug)]
pub struct ShownInvitation {
    pub name: String,
    pub roles: String,
    pub code: Secret,
    pub expires_at: jiff::Timestamp,
}

/// What `up` started and what it prints.
#[derive(Debug)]
pub struct Up {
    pub running: Running,
    pub system: String,
    pub invitations: Vec<ShownInvitation>,
}

/// The name of the system `up` creates: this machine's host name, if usable.
fn local_system_name() -> SystemName {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
    SystemName::parse(&host).unwrap_or_else(|_| SystemName::this_machine())
}

async fn invite(
    store: &Store,
    clock: &dyn Clock,
    name: &str,
    hours: u32,
) -> Result<Option<ShownInvitation>, ServeError> {
    let Some((account, password)) = store.password_hash(name).await? else { return Ok(None) };
    if password.is_some() {
        return Ok(None);
    }
    let code = secrets::generate(secrets::INVITATION_PREFIX)
        .map_err(|e| ServeError::Other(e.to_string()))?;
    let now = clock.now();
    let expires_at = now + SignedDuration::from_hours(i64::from(hours));
    store
        .issue_invitation(
            "patchwarden",
            account.id,
            &secrets::digest(code.expose()),
            expires_at,
            now,
        )
        .await?;
    Ok(Some(ShownInvitation {
        name: name.to_owned(),
        roles: account.roles.to_string(),
        code,
        expires_at,
    }))
}

/// The address that stands for the demo system's users, told of planned downtime.
fn demo_users(system: &SystemName) -> Result<Email, ServeError> {
    Email::parse(&format!("users@{}.example", system.as_str().to_ascii_lowercase()))
        .map_err(ServeError::Other)
}

/// Creates the demo people and this machine's system where they are missing.
async fn demo_organisation(store: &Store, clock: &dyn Clock) -> Result<String, ServeError> {
    for (name, roles, position) in DEMO_PEOPLE {
        let new = NewAccount {
            name: AccountName::parse(name).map_err(ServeError::Other)?,
            email: None,
            position: Some(position.to_owned()),
            roles: Roles::parse_list(roles).map_err(ServeError::Other)?,
        };
        match store.create_account("patchwarden", new, clock.now()).await {
            Ok(_) | Err(StoreError::Invalid(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let systems = store.systems().await?;
    if let Some(system) = systems.first() {
        return Ok(system.name.to_string());
    }
    let owner = store.account_by_name("owner").await?;
    let name = local_system_name();
    let new = NewSystem {
        name: name.clone(),
        owner: owner.id,
        deputy: None,
        stakeholders: vec![],
        notify: vec![demo_users(&name)?],
        time_zone: TimeZoneName::default(),
    };
    store.create_system("patchwarden", new, clock.now()).await?;
    Ok(name.to_string())
}

/// A single-use token that enrols this machine's agent into the local
/// system's test environment; the log names the product as its issuer (the
/// demo officer is recorded as the account it was made for).
pub async fn local_enrolment_token(
    running: &Running,
    system: &str,
    clock: &dyn Clock,
) -> Result<String, ServeError> {
    let store = &running.state.store;
    let officer = store.account_by_name("officer").await?;
    let system = store.system_by_name(system).await?;
    let secret = secrets::generate(patchwarden_protocol::enrol::ENROLMENT_PREFIX)
        .map_err(|e| ServeError::Other(e.to_string()))?;
    let now = clock.now();
    store
        .issue_enrolment_token(
            patchwarden_core::account::PRODUCT_ACTOR,
            officer.id,
            system.id,
            patchwarden_core::system::EnvironmentKind::Test,
            &secrets::digest(secret.expose()),
            now + SignedDuration::from_hours(1),
            now,
        )
        .await?;
    Ok(secret.expose().to_owned())
}

/// Starts the server for a newcomer in `data_dir`, listening on `listen`.
pub async fn up(
    data_dir: &Path,
    listen: SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<Up, ServeError> {
    let config = Config {
        listen,
        database: format!("sqlite:{}", data_dir.join("patchwarden.db").display()),
        data_dir: data_dir.to_owned(),
        insecure_http: true,
        ..Config::default()
    };
    let running = crate::start(&config, clock.clone(), None).await?;
    let store = running.state.store.clone();
    let system = demo_organisation(&store, clock.as_ref()).await?;

    let mut invitations = Vec::new();
    if let FirstAdmin::Invitation { code, expires_at } = &running.first_admin {
        invitations.push(ShownInvitation {
            name: "admin".to_owned(),
            roles: "admin".to_owned(),
            code: code.clone(),
            expires_at: *expires_at,
        });
    } else if let Some(shown) =
        invite(&store, clock.as_ref(), "admin", config.invitation_hours).await?
    {
        invitations.push(shown);
    }
    for (name, _, _) in DEMO_PEOPLE {
        if let Some(shown) = invite(&store, clock.as_ref(), name, config.invitation_hours).await? {
            invitations.push(shown);
        }
    }
    Ok(Up { running, system, invitations })
}
