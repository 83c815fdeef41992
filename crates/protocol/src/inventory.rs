//! The inventory an agent reports: installed packages, facts about the machine, pending updates.
//!
//! Every type here serialises with serde, and an [`Inventory`] has a stable hash: SHA-256 over a
//! canonical encoding (lists sorted, object keys sorted, no white space, prefixed with the
//! format number), so the agent sends its inventory only when the hash changed. The encoding is
//! versioned by [`INVENTORY_FORMAT`]; a test pins the hash of a fixed inventory so an accidental
//! change to the encoding is caught.
//!
//! Nothing that changes on every check-in belongs here: the clock offset is measured per
//! check-in and sent beside the inventory, not in it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The version of the inventory's shape and of its canonical encoding.
pub const INVENTORY_FORMAT: u32 = 1;

/// Everything one endpoint reports about its packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub format: u32,
    pub package_manager: PackageManager,
    pub packages: Vec<InstalledPackage>,
    pub facts: Facts,
    pub pending: Vec<PendingUpdate>,
}

/// Which package database the packages were read from, and so which version rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    Dpkg,
    Rpm,
}

/// One installed package (one architecture of it, when several are installed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub name: String,
    pub architecture: String,
    /// The full version as the package manager writes it (`1:2.3-4`, rpm `2:1.0-3.el9`).
    pub version: String,
    /// The source package it was built from; the package's own name when the database names none.
    pub source_name: String,
    /// The source package's version; the package's own version when the database names none.
    pub source_version: String,
    pub state: PackageState,
    /// Held back from upgrades by the administrator (dpkg's `hold` selection).
    pub held: bool,
}

/// How far the package manager got with a package that is (at least partly) on the disk.
///
/// dpkg's `not-installed` and `config-files` are not here: such packages are not installed and
/// are left out of the inventory. rpm knows only `Installed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageState {
    Installed,
    HalfInstalled,
    Unpacked,
    HalfConfigured,
    TriggersAwaited,
    TriggersPending,
}

impl PackageState {
    /// dpkg's word for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageState::Installed => "installed",
            PackageState::HalfInstalled => "half-installed",
            PackageState::Unpacked => "unpacked",
            PackageState::HalfConfigured => "half-configured",
            PackageState::TriggersAwaited => "triggers-awaited",
            PackageState::TriggersPending => "triggers-pending",
        }
    }
}

/// What the machine is and whether it needs attention, apart from its packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub os: OperatingSystem,
    /// The machine's architecture as the kernel names it (`x86_64`, `aarch64`).
    pub architecture: String,
    /// `uname -r` of the running kernel.
    pub running_kernel: String,
    pub newest_installed_kernel: Option<InstalledKernel>,
    /// Changes on every boot; `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    pub reboot: RebootStatus,
    pub competing_updaters: Vec<CompetingUpdater>,
}

/// The distribution, from `/etc/os-release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatingSystem {
    /// `ID`: `debian`, `ubuntu`, `rhel`, `fedora`, ...
    pub id: String,
    pub id_like: Vec<String>,
    pub name: String,
    pub pretty_name: String,
    /// `VERSION_ID`; absent on Debian testing and unstable.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`, or the codename from `/etc/debian_version` (`trixie/sid`).
    pub codename: Option<String>,
    /// The best name of the release: the version id, else the codename, else the Debian version.
    pub release: String,
}

/// An installed kernel package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledKernel {
    pub package: String,
    /// The package's version.
    pub version: String,
    /// What `uname -r` says once this kernel runs.
    pub release: String,
}

/// Whether the machine waits for a reboot, and every reason found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootStatus {
    pub required: bool,
    pub reasons: Vec<RebootReason>,
}

impl RebootStatus {
    /// A status from its reasons: a reboot is required when there is any.
    pub fn from_reasons(mut reasons: Vec<RebootReason>) -> Self {
        reasons.sort();
        reasons.dedup();
        RebootStatus { required: !reasons.is_empty(), reasons }
    }
}

/// One piece of evidence that a reboot is due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RebootReason {
    /// Debian's `/run/reboot-required`, with the packages from `/run/reboot-required.pkgs`.
    RebootRequiredFile { packages: Vec<String> },
    /// `dnf needs-restarting -r` exited 1.
    NeedsRestarting,
    /// A newer kernel is installed than the one running.
    NewerKernelInstalled { running: String, newest: String },
}

/// Something else on the machine that installs updates by itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CompetingUpdater {
    pub kind: UpdaterKind,
    /// The file that showed it, relative to the machine's root (`/etc/apt/apt.conf.d/20auto-upgrades`).
    pub evidence: String,
}

/// The kinds of automatic updater the agent looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdaterKind {
    /// `APT::Periodic::Unattended-Upgrade` set to a non-zero value.
    UnattendedUpgrades,
    /// `apt-daily.timer` enabled: downloads updates (installs nothing by itself).
    AptDailyTimer,
    /// `apt-daily-upgrade.timer` enabled: runs unattended-upgrades when that is configured.
    AptDailyUpgradeTimer,
    /// A `dnf-automatic*.timer` (or dnf5's) enabled.
    DnfAutomatic,
    /// `/system-update` exists: PackageKit will install updates on the next boot.
    PackageKitOfflineUpdate,
}

/// A newer version the package manager would install, or one it keeps back and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingUpdate {
    pub name: String,
    pub architecture: String,
    pub installed_version: Option<String>,
    pub candidate_version: String,
    /// The repositories that carry the candidate version.
    pub repositories: Vec<Repository>,
    /// From a security repository, known by its label or codename (never by `stable`).
    pub security: bool,
    /// Set when a plain upgrade leaves the package alone.
    pub kept_back: Option<KeptBackReason>,
}

/// Why an upgrade leaves a package at its installed version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeptBackReason {
    /// The administrator holds it (`apt-mark hold`).
    Held,
    /// Upgrading it would install new packages or remove installed ones.
    Dependencies,
}

/// Where a candidate version comes from, as the repository's Release file describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Repository {
    /// apt's description of the index (`http://deb.debian.org/debian bookworm/main amd64
    /// Packages`, without any credentials), or dnf's repository id.
    pub index: String,
    pub origin: Option<String>,
    pub label: Option<String>,
    /// A name that does not move (`bookworm-security`).
    pub codename: Option<String>,
    /// A name that moves when a release does (`stable-security` becomes `oldstable-security`).
    pub suite: Option<String>,
}

impl Repository {
    /// A security repository: Debian's label, or a codename or suite ending in `-security`.
    ///
    /// The suite is only read for its ending, which does not move (Ubuntu's security pocket
    /// has suite `jammy-security` and codename `jammy`).
    pub fn is_security(&self) -> bool {
        let label = self.label.as_deref() == Some("Debian-Security");
        let ends_security =
            |name: &Option<String>| name.as_deref().is_some_and(|name| name.ends_with("-security"));
        label || ends_security(&self.codename) || ends_security(&self.suite)
    }
}

impl Inventory {
    /// An inventory in canonical order: packages, pending updates and updaters sorted.
    pub fn new(
        package_manager: PackageManager,
        packages: Vec<InstalledPackage>,
        facts: Facts,
        pending: Vec<PendingUpdate>,
    ) -> Self {
        let mut inventory =
            Inventory { format: INVENTORY_FORMAT, package_manager, packages, facts, pending };
        inventory.normalise();
        inventory
    }

    /// Sorts every list, so two inventories of the same machine are equal and hash alike.
    pub fn normalise(&mut self) {
        self.packages.sort_unstable();
        self.pending.sort_unstable();
        for update in &mut self.pending {
            update.repositories.sort_unstable();
        }
        self.facts.competing_updaters.sort_unstable();
        self.facts.reboot.reasons.sort_unstable();
    }

    /// The lowercase hex SHA-256 of the canonical encoding; equal inventories hash alike.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }

    /// `patchwarden-inventory <format>\n` then the normalised inventory as JSON with sorted
    /// object keys and no white space.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        if !self.is_normalised() {
            let mut normalised = self.clone();
            normalised.normalise();
            return normalised.canonical_bytes();
        }
        // The top level's keys in byte order: facts, format, package_manager, packages,
        // pending. Packages, the bulk of an inventory, are written field by field in
        // that same order; the rest goes through `Value`. A test holds this equal to
        // writing the whole inventory through `Value`.
        let mut out = format!("patchwarden-inventory {}\n", self.format).into_bytes();
        out.extend_from_slice(b"{\"facts\":");
        write_canonical(&serde_json::to_value(&self.facts).unwrap_or(Value::Null), &mut out);
        out.extend_from_slice(b",\"format\":");
        write_scalar(&self.format, &mut out);
        out.extend_from_slice(b",\"package_manager\":");
        write_scalar(&self.package_manager, &mut out);
        out.extend_from_slice(b",\"packages\":[");
        for (index, package) in self.packages.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_package(package, &mut out);
        }
        out.extend_from_slice(b"],\"pending\":");
        write_canonical(&serde_json::to_value(&self.pending).unwrap_or(Value::Null), &mut out);
        out.push(b'}');
        out
    }

    /// Whether every list is already in the order `normalise` gives it.
    fn is_normalised(&self) -> bool {
        self.packages.is_sorted()
            && self.pending.is_sorted()
            && self.pending.iter().all(|update| update.repositories.is_sorted())
            && self.facts.competing_updaters.is_sorted()
            && self.facts.reboot.reasons.is_sorted()
    }
}

/// JSON with object keys in byte order and no white space, whatever order serde_json keeps.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// One installed package, its keys in byte order.
fn write_package(package: &InstalledPackage, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"architecture\":");
    write_scalar(&package.architecture, out);
    out.extend_from_slice(b",\"held\":");
    write_scalar(&package.held, out);
    out.extend_from_slice(b",\"name\":");
    write_scalar(&package.name, out);
    out.extend_from_slice(b",\"source_name\":");
    write_scalar(&package.source_name, out);
    out.extend_from_slice(b",\"source_version\":");
    write_scalar(&package.source_version, out);
    out.extend_from_slice(b",\"state\":");
    write_scalar(&package.state, out);
    out.extend_from_slice(b",\"version\":");
    write_scalar(&package.version, out);
    out.push(b'}');
}

/// A string, number, boolean or null as serde_json writes it.
fn write_scalar<T: Serialize + ?Sized>(scalar: &T, out: &mut Vec<u8>) {
    // Writing a string or a JSON scalar into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, scalar);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn package(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            architecture: "amd64".into(),
            version: version.into(),
            source_name: name.into(),
            source_version: version.into(),
            state: PackageState::Installed,
            held: false,
        }
    }

    fn facts() -> Facts {
        Facts {
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
            running_kernel: "6.1.0-18-amd64".into(),
            newest_installed_kernel: None,
            boot_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            reboot: RebootStatus::from_reasons(vec![]),
            competing_updaters: vec![
                CompetingUpdater {
                    kind: UpdaterKind::AptDailyTimer,
                    evidence: "/etc/systemd/system/timers.target.wants/apt-daily.timer".into(),
                },
                CompetingUpdater {
                    kind: UpdaterKind::UnattendedUpgrades,
                    evidence: "/etc/apt/apt.conf.d/20auto-upgrades".into(),
                },
            ],
        }
    }

    fn security_update() -> PendingUpdate {
        PendingUpdate {
            name: "openssl".into(),
            architecture: "amd64".into(),
            installed_version: Some("3.0.11-1~deb12u2".into()),
            candidate_version: "3.0.13-1~deb12u1".into(),
            repositories: vec![Repository {
                index:
                    "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
                        .into(),
                origin: Some("Debian".into()),
                label: Some("Debian-Security".into()),
                codename: Some("bookworm-security".into()),
                suite: Some("oldstable-security".into()),
            }],
            security: true,
            kept_back: None,
        }
    }

    fn inventory() -> Inventory {
        Inventory::new(
            PackageManager::Dpkg,
            vec![package("zlib1g", "1:1.2.13.dfsg-1"), package("bash", "5.2.15-2+b2")],
            facts(),
            vec![security_update()],
        )
    }

    #[test]
    fn the_order_of_lists_does_not_change_the_hash() {
        let mut shuffled = inventory();
        shuffled.packages.reverse();
        shuffled.facts.competing_updaters.reverse();
        assert_ne!(shuffled.packages, inventory().packages);
        assert_eq!(shuffled.hash(), inventory().hash());
    }

    #[test]
    fn any_change_changes_the_hash() {
        let base = inventory().hash();
        let mut changed = inventory();
        changed.packages[0].version = "5.2.15-2+b7".into();
        assert_ne!(changed.hash(), base);

        let mut held = inventory();
        held.packages[1].held = true;
        assert_ne!(held.hash(), base);

        let mut rebooted = inventory();
        rebooted.facts.boot_id = "8d2d7a62-5f60-4d4c-9b0e-1d1e5f0b7f47".into();
        assert_ne!(rebooted.hash(), base);
    }

    #[test]
    fn the_canonical_encoding_is_pinned() {
        let inventory = Inventory::new(
            PackageManager::Dpkg,
            vec![package("bash", "5.2.15-2+b2")],
            Facts { competing_updaters: vec![], ..facts() },
            vec![],
        );
        let bytes = String::from_utf8(inventory.canonical_bytes()).unwrap();
        let expected = concat!(
            "patchwarden-inventory 1\n",
            r#"{"facts":{"architecture":"x86_64","boot_id":"0f8fad5b-d9cb-469f-a165-70867728950e","#,
            r#""competing_updaters":[],"newest_installed_kernel":null,"os":{"codename":"bookworm","#,
            r#""id":"debian","id_like":[],"name":"Debian GNU/Linux","#,
            r#""pretty_name":"Debian GNU/Linux 12 (bookworm)","release":"12","version_id":"12"},"#,
            r#""reboot":{"reasons":[],"required":false},"running_kernel":"6.1.0-18-amd64"},"#,
            r#""format":1,"package_manager":"dpkg","packages":[{"architecture":"amd64","held":false,"#,
            r#""name":"bash","source_name":"bash","source_version":"5.2.15-2+b2","state":"installed","#,
            r#""version":"5.2.15-2+b2"}],"pending":[]}"#,
        );
        assert_eq!(bytes, expected);
        assert_eq!(
            inventory.hash(),
            "a5d5474a5979d740e83fdfc933d4ce070037d0255fbca730e5f6ddc05ad434c1",
            "a changed encoding needs a new INVENTORY_FORMAT"
        );
    }

    /// The reference encoding: the whole normalised inventory through `Value`.
    fn canonical_through_value(inventory: &Inventory) -> Vec<u8> {
        let mut normalised = inventory.clone();
        normalised.normalise();
        let mut out = format!("patchwarden-inventory {}\n", normalised.format).into_bytes();
        write_canonical(&serde_json::to_value(&normalised).unwrap(), &mut out);
        out
    }

    #[test]
    fn the_fast_encoding_equals_the_reference_one() {
        let mut odd = package("na\u{ef}ve-\"quoted\"\\pkg\n", "1:2.0~rc1+dfsg-3");
        odd.held = true;
        odd.state = PackageState::HalfConfigured;
        odd.source_name = "t\u{e9}st\t".into();
        let mut unsorted = inventory();
        unsorted.packages.push(odd);
        unsorted.packages.reverse();
        unsorted
            .pending
            .push(PendingUpdate { kept_back: Some(KeptBackReason::Held), ..security_update() });
        unsorted.facts.reboot =
            RebootStatus::from_reasons(vec![RebootReason::NewerKernelInstalled {
                running: "6.1.0-18-amd64".into(),
                newest: "6.1.0-27-amd64".into(),
            }]);
        for case in [inventory(), unsorted] {
            assert_eq!(
                String::from_utf8(case.canonical_bytes()).unwrap(),
                String::from_utf8(canonical_through_value(&case)).unwrap()
            );
        }
    }

    #[test]
    fn an_inventory_round_trips_through_json() {
        let json = serde_json::to_string(&inventory()).unwrap();
        let back: Inventory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, inventory());
        assert_eq!(back.hash(), inventory().hash());
    }

    #[test]
    fn security_repositories_are_known_by_label_or_codename_not_by_stable() {
        let repository = |label: &str, codename: &str, suite: &str| Repository {
            index: "x".into(),
            origin: Some("Debian".into()),
            label: Some(label.into()),
            codename: Some(codename.into()),
            suite: Some(suite.into()),
        };
        let cases = [
            (repository("Debian-Security", "bookworm-security", "stable-security"), true),
            (repository("Debian-Security", "bookworm-security", "oldstable-security"), true),
            (repository("Debian", "bookworm", "stable"), false),
            (repository("Debian", "bookworm-updates", "stable-updates"), false),
            (repository("Ubuntu", "jammy", "jammy-security"), true),
            (repository("Ubuntu", "jammy", "jammy-updates"), false),
            (repository("Local", "bookworm-security", "stable"), true),
        ];
        for (repository, security) in cases {
            assert_eq!(repository.is_security(), security, "{repository:?}");
        }
    }
}
