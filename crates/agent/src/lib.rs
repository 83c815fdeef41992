//! The endpoint agent's inventory: what is installed, what the machine is, what can be upgraded.
//!
//! The agent reads dpkg's status file directly ([`dpkg`]), queries rpm through its query
//! interface ([`rpm`]) and asks apt ([`apt`]) or dnf ([`dnf`]) what can be upgraded; every
//! package-manager program runs through [`process`], which sets the environment, closes stdin,
//! enforces a timeout and checks the exit status. [`facts`] reads the machine's files under an
//! injectable root, and [`collect`] puts it all into an [`inventory::Inventory`] whose stable
//! hash lets the agent send it only when it changed.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod apt;
pub mod client;
pub mod collect;
pub mod dnf;
pub mod dpkg;
pub mod facts;
pub mod job;
pub mod process;
pub mod rpm;
pub mod run;
pub mod state;

/// The inventory's types live with the rest of what agent and server say to each other.
pub use patchwarden_protocol::inventory;

pub use collect::{CollectError, PackageSystem, build_inventory, collect_inventory};
pub use inventory::Inventory;
