//! The agent's inventory against real apt, dpkg, rpm and dnf, on sandbox roots the tests build.
//!
//! Each test builds its own packages and repositories in a temporary folder; the machine's own
//! dpkg database is hashed before and after and must not change.

mod common;

use std::fs;

use common::{DebSandbox, DebSpec, RPM_REPOSITORY, Release, RpmSandbox, RpmSpec};
use patchwarden_agent::apt::AptError;
use patchwarden_agent::facts::FactSources;
use patchwarden_agent::inventory::{KeptBackReason, PackageState, PendingUpdate};
use patchwarden_agent::process::ProcessError;
use patchwarden_agent::rpm::RpmError;
use patchwarden_agent::{PackageSystem, collect_inventory};

/// A machine's files for the facts: os-release, kernel, boot id (a stand-in: the real one only
/// changes with a reboot).
fn fact_sources(root: &std::path::Path) -> FactSources {
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n");
    write("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
    write("proc/sys/kernel/random/boot_id", "4f1c2b0e-6a3d-4c4e-9a57-0d5b8f3e2a11\n");
    FactSources::under(root)
}

fn summary(pending: &[PendingUpdate]) -> Vec<String> {
    pending
        .iter()
        .map(|p| {
            let reason = match p.kept_back {
                None => "upgradable",
                Some(KeptBackReason::Held) => "held",
                Some(KeptBackReason::Dependencies) => "kept back",
            };
            let security = if p.security { " security" } else { "" };
            let installed = p.installed_version.as_deref().unwrap_or("-");
            format!(
                "{} {} {installed} -> {} {reason}{security}",
                p.name, p.architecture, p.candidate_version
            )
        })
        .collect()
}

/// Two repositories, four packages at 1.0 installed, then updates published to both.
fn sandbox_with_updates() -> DebSandbox {
    let mut sandbox = DebSandbox::new();
    let main = sandbox.add_repository("main", Release::local("Patchwarden Test"));
    let security = sandbox.add_repository("security", Release::debian_security());
    sandbox.publish(
        &main,
        &[
            DebSpec::new("pw-demo", "1.0-1"),
            DebSpec::new("pw-held", "1.0-1"),
            DebSpec::new("pw-needy", "1.0-1"),
            DebSpec::new("pw-same", "1.0-1").source("pw-origin (0.9-3)"),
        ],
    );
    sandbox.update();
    sandbox.install(&["pw-demo", "pw-held", "pw-needy", "pw-same"]);
    sandbox.hold("pw-held");

    // pw-demo 1.1 is a security update; pw-held 1.1 is held; pw-needy 1.1 needs a new package.
    sandbox.publish(&security, &[DebSpec::new("pw-demo", "1.1-1")]);
    sandbox.publish(
        &main,
        &[
            DebSpec::new("pw-held", "1.1-1"),
            DebSpec::new("pw-newdep", "1.0-1"),
            DebSpec::new("pw-needy", "1.1-1").depends("pw-newdep"),
        ],
    );
    sandbox
}

#[test]
fn apt_reports_a_security_update_by_its_repository_and_held_and_kept_back_packages() {
    let machine = common::machine_dpkg_status_hash();
    let sandbox = sandbox_with_updates();
    let driver = sandbox.driver();
    driver.update_lists().unwrap();

    let pending = driver.pending_updates().unwrap();
    assert_eq!(
        summary(&pending),
        [
            "pw-demo all 1.0-1 -> 1.1-1 upgradable security",
            "pw-held all 1.0-1 -> 1.1-1 held",
            "pw-needy all 1.0-1 -> 1.1-1 kept back",
        ]
    );
    let repository = &pending[0].repositories[0];
    assert_eq!(
        (repository.origin.as_deref(), repository.label.as_deref(), repository.codename.as_deref()),
        (Some("Debian"), Some("Debian-Security"), Some("bookworm-security"))
    );
    assert_eq!(pending[1].repositories[0].codename.as_deref(), Some("bookworm"));
    assert!(!pending[1].security);

    // The hold is dpkg's, read from the status file.
    let installed = driver.installed_packages().unwrap();
    let held: Vec<&str> = installed.iter().filter(|p| p.held).map(|p| p.name.as_str()).collect();
    assert_eq!(held, ["pw-held"]);
    let same = installed.iter().find(|p| p.name == "pw-same").unwrap();
    assert_eq!((same.source_name.as_str(), same.source_version.as_str()), ("pw-origin", "0.9-3"));

    assert_eq!(common::machine_dpkg_status_hash(), machine, "the machine's dpkg status changed");
}

#[test]
fn apt_reports_nothing_when_everything_is_current() {
    let machine = common::machine_dpkg_status_hash();
    let mut sandbox = DebSandbox::new();
    let main = sandbox.add_repository("main", Release::local("Patchwarden Test"));
    sandbox.publish(&main, &[DebSpec::new("pw-demo", "1.0-1"), DebSpec::new("pw-demo", "0.9-1")]);
    sandbox.update();
    sandbox.install(&["pw-demo"]);

    let driver = sandbox.driver();
    assert_eq!(driver.pending_updates().unwrap(), []);
    // An older version in the repository is no pending update.
    assert_eq!(driver.installed_packages().unwrap()[0].version, "1.0-1");
    assert_eq!(common::machine_dpkg_status_hash(), machine);
}

#[test]
fn the_inventory_hash_changes_when_the_machine_does_and_only_then() {
    let machine = common::machine_dpkg_status_hash();
    let sandbox = sandbox_with_updates();
    sandbox.update();
    let facts_root = tempfile::tempdir().unwrap();
    let sources = fact_sources(facts_root.path());
    let system = PackageSystem::Apt(sandbox.driver());

    let before = collect_inventory(&system, &sources).unwrap();
    let again = collect_inventory(&system, &sources).unwrap();
    assert_eq!(before.hash(), again.hash());
    assert_eq!(before.packages.len(), 4);
    assert_eq!(before.pending.len(), 3);
    assert_eq!(before.facts.os.codename.as_deref(), Some("bookworm"));

    // Installing the security update changes the packages and the pending list.
    sandbox.upgrade();
    let after = collect_inventory(&system, &sources).unwrap();
    assert_ne!(after.hash(), before.hash());
    let demo = after.packages.iter().find(|p| p.name == "pw-demo").unwrap();
    assert_eq!(demo.version, "1.1-1");
    assert_eq!(
        summary(&after.pending),
        ["pw-held all 1.0-1 -> 1.1-1 held", "pw-needy all 1.0-1 -> 1.1-1 kept back"]
    );
    assert_eq!(common::machine_dpkg_status_hash(), machine);
}

#[test]
fn half_installed_states_from_real_dpkg_are_reported() {
    let machine = common::machine_dpkg_status_hash();
    let sandbox = DebSandbox::new();
    let deb = sandbox.build(&DebSpec::new("pw-unpacked", "1.0-1"));
    common::run(sandbox.dpkg().arg("--unpack").arg(&deb));

    let installed = sandbox.driver().installed_packages().unwrap();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].state, PackageState::Unpacked);
    assert_eq!(common::machine_dpkg_status_hash(), machine);
}

#[test]
fn an_apt_failure_names_the_command_and_the_tail_of_its_stderr() {
    let sandbox = DebSandbox::new();
    fs::write(sandbox.root().join("etc/apt/sources.list"), "deb this is not a source line\n")
        .unwrap();
    let error = sandbox.driver().pending_updates().unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, AptError::Process(ProcessError::Failed { code: 100, .. })),
        "{message}"
    );
    assert!(message.starts_with("`apt-get -o Dir::State::status="), "{message}");
    assert!(
        message.contains("-s -o Debug::NoLocking=1 upgrade` exited with code 100: "),
        "{message}"
    );
    assert!(message.contains("E: "), "{message}");
}

#[test]
fn dnf_reports_updates_with_security_marks_from_updateinfo() {
    let machine = common::machine_dpkg_status_hash();
    let mut sandbox = RpmSandbox::new();
    sandbox.publish(&[
        RpmSpec::new("pw-demo", "1.0", "1"),
        RpmSpec::new("pw-epoch", "2.0", "3").epoch(2),
    ]);
    sandbox.install(&["pw-demo", "pw-epoch"]);
    let driver = sandbox.driver();
    assert_eq!(
        driver.pending_updates().unwrap(),
        [],
        "check-update exits 0 when nothing is pending"
    );

    sandbox.publish_security("PWSA-2026:0001", RpmSpec::new("pw-demo", "1.1", "1"));
    sandbox.publish(&[RpmSpec::new("pw-epoch", "2.1", "1").epoch(2)]);
    let pending = driver.pending_updates().unwrap();
    assert_eq!(
        summary(&pending),
        [
            "pw-demo noarch 1.0-1 -> 1.1-1 upgradable security",
            "pw-epoch noarch 2:2.0-3 -> 2:2.1-1 upgradable"
        ]
    );
    assert_eq!(pending[0].repositories[0].index, RPM_REPOSITORY);

    let installed = driver.installed_packages().unwrap();
    let versions: Vec<(&str, &str)> =
        installed.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
    assert_eq!(versions, [("pw-demo", "1.0-1"), ("pw-epoch", "2:2.0-3")]);
    assert_eq!(common::machine_dpkg_status_hash(), machine);
}

#[test]
fn dnf_needs_restarting_is_a_reboot_reason_in_the_inventory() {
    let sandbox = RpmSandbox::new();
    sandbox.publish(&[RpmSpec::new("pw-demo", "1.0", "1")]);
    sandbox.install(&["pw-demo"]);
    let facts_root = tempfile::tempdir().unwrap();
    let sources = fact_sources(facts_root.path());
    let system = PackageSystem::Dnf(sandbox.driver());

    let inventory = collect_inventory(&system, &sources).unwrap();
    assert!(!inventory.facts.reboot.required, "{:?}", inventory.facts.reboot);
    assert_eq!(inventory.packages.len(), 1);

    // needs-restarting counts a glibc installed after boot; this one is a stand-in package.
    sandbox.publish(&[RpmSpec::new("glibc", "9.9", "1")]);
    sandbox.install(&["glibc"]);
    assert!(sandbox.driver().needs_reboot().unwrap());
    let inventory = collect_inventory(&system, &sources).unwrap();
    assert!(inventory.facts.reboot.required);
}

#[test]
fn rpm_is_not_pointed_at_a_database_that_does_not_exist() {
    let sandbox = RpmSandbox::new();
    let missing = sandbox.root().join("no/such/rpmdb");
    let database = patchwarden_agent::rpm::RpmDatabase {
        root: Some(sandbox.root()),
        dbpath: Some("/no/such/rpmdb".into()),
        ..Default::default()
    };
    let error = database.installed_packages().unwrap_err();
    assert!(matches!(&error, RpmError::MissingDatabase { path } if *path == missing), "{error}");
    assert!(!missing.exists(), "rpm created the database it was pointed at");
}

/// What `dpkg-query` reports for an admin directory, in the inventory's terms.
fn dpkg_query(admindir: &std::path::Path) -> Vec<String> {
    let format = r"${Package}\t${Architecture}\t${Version}\t${source:Package}\t${source:Version}\t${db:Status-Want}\t${db:Status-Status}\n";
    let output = common::run(
        patchwarden_agent::process::Invocation::new("dpkg-query")
            .env("PATH", patchwarden_agent::process::DEFAULT_PATH)
            .arg(format!("--admindir={}", admindir.display()))
            .args(["-W", "-f", format]),
    );
    let mut rows: Vec<String> = output
        .stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, arch, version, source, source_version, want, status] = fields[..] else {
                panic!("dpkg-query line {line:?}");
            };
            let installed = !matches!(status, "not-installed" | "config-files");
            installed.then(|| {
                format!(
                    "{name} {arch} {version} {source} {source_version} {status} {}",
                    want == "hold"
                )
            })
        })
        .collect();
    rows.sort();
    rows
}

fn our_rows(admindir: &std::path::Path) -> Vec<String> {
    let packages = patchwarden_agent::dpkg::read_database(admindir).unwrap();
    let mut rows: Vec<String> = packages
        .iter()
        .map(|p| {
            let state = p.state.as_str();
            format!(
                "{} {} {} {} {} {state} {}",
                p.name, p.architecture, p.version, p.source_name, p.source_version, p.held
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn the_machines_dpkg_database_reads_as_dpkg_query_reads_it() {
    // Read only: the machine's own database, compared with dpkg's own reading of it.
    let admindir = std::path::Path::new("/var/lib/dpkg");
    let ours = our_rows(admindir);
    assert!(ours.len() > 100, "a Debian machine has hundreds of packages: {}", ours.len());
    assert_eq!(ours, dpkg_query(admindir));
}

#[test]
fn a_sandbox_with_every_state_reads_as_dpkg_query_reads_it() {
    let machine = common::machine_dpkg_status_hash();
    let mut sandbox = DebSandbox::new();
    let main = sandbox.add_repository("main", Release::local("Patchwarden Test"));
    sandbox.publish(
        &main,
        &[
            DebSpec::new("pw-held", "1.0-1"),
            DebSpec::new("pw-binnmu", "2.0-1+b1").source("pw-binsrc (2.0-1)"),
            DebSpec::new("pw-epoch", "1:3.0-1"),
        ],
    );
    sandbox.update();
    sandbox.install(&["pw-held", "pw-binnmu", "pw-epoch"]);
    sandbox.hold("pw-held");
    let unpacked = sandbox.build(&DebSpec::new("pw-unpacked", "1.0-1"));
    common::run(sandbox.dpkg().arg("--unpack").arg(&unpacked));
    common::run(sandbox.dpkg().args(["--remove", "pw-epoch"]));

    let ours = our_rows(&sandbox.admindir());
    assert_eq!(
        ours,
        [
            "pw-binnmu all 2.0-1+b1 pw-binsrc 2.0-1 installed false",
            "pw-held all 1.0-1 pw-held 1.0-1 installed true",
            "pw-unpacked all 1.0-1 pw-unpacked 1.0-1 unpacked false",
        ]
    );
    assert_eq!(ours, dpkg_query(&sandbox.admindir()));
    assert_eq!(common::machine_dpkg_status_hash(), machine);
}
