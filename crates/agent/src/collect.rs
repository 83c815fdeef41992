//! Building the whole inventory of one endpoint from its package manager and its files.
//!
//! [`collect_inventory`] asks the driver for the installed packages and the pending updates,
//! reads the facts, and returns the inventory in canonical order, ready to be hashed. Nothing here
//! changes the machine: the apt simulation takes no lock and dnf only reads.

use crate::apt::{AptDriver, AptError};
use crate::dnf::{DnfDriver, DnfError};
use crate::facts::{self, FactSources, FactsError};
use crate::inventory::{InstalledPackage, Inventory, PackageManager, PendingUpdate, RebootReason};

/// The package system an endpoint runs.
#[derive(Debug, Clone)]
pub enum PackageSystem {
    Apt(AptDriver),
    Dnf(DnfDriver),
}

/// Building the inventory failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Dnf(#[from] DnfError),
    #[error(transparent)]
    Facts(#[from] FactsError),
}

/// The package system's installed packages and pending updates, and the machine's facts.
pub fn collect_inventory(
    system: &PackageSystem,
    sources: &FactSources,
) -> Result<Inventory, CollectError> {
    match system {
        PackageSystem::Apt(apt) => {
            let packages = apt.installed_packages()?;
            let pending = apt.pending_updates_for(&packages)?;
            Ok(build_inventory(PackageManager::Dpkg, packages, pending, sources, Vec::new())?)
        }
        PackageSystem::Dnf(dnf) => {
            let packages = dnf.installed_packages()?;
            let pending = dnf.pending_updates()?;
            let reasons =
                if dnf.needs_reboot()? { vec![RebootReason::NeedsRestarting] } else { Vec::new() };
            Ok(build_inventory(PackageManager::Rpm, packages, pending, sources, reasons)?)
        }
    }
}

/// Reads the facts and assembles the inventory from packages and updates already known.
pub fn build_inventory(
    manager: PackageManager,
    packages: Vec<InstalledPackage>,
    pending: Vec<PendingUpdate>,
    sources: &FactSources,
    extra_reboot_reasons: Vec<RebootReason>,
) -> Result<Inventory, FactsError> {
    let facts = facts::gather(sources, manager, &packages, extra_reboot_reasons)?;
    Ok(Inventory::new(manager, packages, facts, pending))
}
