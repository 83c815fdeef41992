//! Server time of ingesting a 2,000-package inventory: the agent's message
//! parsed, its hash checked, the delta against the previous inventory
//! computed, and both written to a SQLite file, by the same function the
//! inventory route calls, without the HTTP transfer. Each round changes one
//! package's version.
//!
//! `cargo bench -p patchwarden-server --bench ingest`

use std::sync::Arc;
use std::time::Instant;

use patchwarden_protocol::inventory::{
    Facts, InstalledPackage, Inventory, OperatingSystem, PackageManager, PackageState, RebootStatus,
};
use patchwarden_server::secrets::Secret;
use patchwarden_server::{Config, ManualClock};
use serde_json::json;

const ROUNDS: usize = 50;

fn inventory(bump: usize) -> Inventory {
    let packages = (0..2_000)
        .map(|i| InstalledPackage {
            name: format!("package-{i:04}"),
            architecture: "amd64".into(),
            version: if i == 0 { format!("1.0-{bump}") } else { format!("{}.{}-1", i % 7, i % 13) },
            source_name: format!("source-{:04}", i / 3),
            source_version: "1.0-1".into(),
            state: PackageState::Installed,
            held: false,
        })
        .collect();
    let facts = Facts {
        os: OperatingSystem {
            id: "debian".into(),
            id_like: vec![],
            name: "Debian GNU/Linux".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            release: "12".into(),
        },
        architecture: "x86_64".into(),
        running_kernel: "6.1.0-27-amd64".into(),
        newest_installed_kernel: None,
        boot_id: "6e2b1c1e-0000-4000-8000-000000000001".into(),
        reboot: RebootStatus { required: false, reasons: vec![] },
        competing_updaters: vec![],
    };
    Inventory::new(PackageManager::Dpkg, packages, facts, vec![])
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: format!("sqlite:{}", dir.path().join("bench.db").display()),
            data_dir: dir.path().to_owned(),
            insecure_http: true,
            ..Config::default()
        };
        let clock = Arc::new(ManualClock::new("2026-12-04T12:00:00Z".parse().unwrap()));
        let bootstrap = Secret::from("pwt_bench-bootstrap-token-0123456789abcdef".to_owned());
        let running = patchwarden_server::start(&config, clock.clone(), Some(bootstrap)).await.unwrap();
        let state = running.state.clone();
        let now = || {
            use patchwarden_server::Clock;
            clock.now()
        };

        // One endpoint, enrolled through the store.
        let admin = state.store.account_by_name("admin").await.unwrap();
        let owner = patchwarden_store::NewAccount {
            name: patchwarden_core::AccountName::parse("owner").unwrap(),
            email: None,
            position: None,
            roles: patchwarden_core::Roles::parse_list("owner").unwrap(),
        };
        let owner = state.store.create_account("admin", owner, now()).await.unwrap();
        let system = patchwarden_core::system::NewSystem {
            name: patchwarden_core::system::SystemName::parse("fleet").unwrap(),
            owner: owner.id,
            deputy: None,
            stakeholders: vec![],
            notify: vec![],
            time_zone: patchwarden_core::system::TimeZoneName::default(),
        };
        let system = state.store.create_system("admin", system, now()).await.unwrap();
        let test = patchwarden_core::system::EnvironmentKind::Test;
        let expires = now() + jiff::SignedDuration::from_hours(1);
        state
            .store
            .issue_enrolment_token("admin", admin.id, system.id, test, "token-hash", expires, now())
            .await
            .unwrap();
        state.store.enrol("token-hash", "credential-hash", "host-1", None, now()).await.unwrap();
        let endpoint = state.store.endpoint_by_credential("credential-hash").await.unwrap().unwrap();

        let mut times = Vec::new();
        for bump in 0..ROUNDS {
            let inventory = inventory(bump);
            let body = serde_json::to_vec(&json!({ "hash": inventory.hash(), "inventory": inventory })).unwrap();
            let started = Instant::now();
            patchwarden_server::work::accept_inventory(&state, &endpoint, &body, now()).await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let first = times[0];
        println!(
            "inventory ingest, 2,000 packages ({} KiB of JSON), {ROUNDS} rounds: median {:.2} ms server time (first, with no previous inventory: {first:.2} ms)",
            serde_json::to_vec(&inventory(0)).unwrap().len() / 1024,
            median(times),
        );
        running.shutdown().await;
    });
}
