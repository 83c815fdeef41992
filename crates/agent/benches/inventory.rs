//! Times reading a 2,000-package dpkg status file and building the inventory from it.
//!
//! The status file is generated to look like a real one: each stanza has the fields dpkg
//! writes (dependencies, a multi-line description, conffiles for some), a few packages are
//! held, half-configured or removed with their configuration left, some are installed for two
//! architectures, and kernels are among them. One run reads the file, parses it, reads the
//! facts from a temporary root, builds the inventory and hashes it. The median of the runs is
//! checked against the budget of 50 ms; the program exits 1 when it is over.
//!
//! Run with `cargo bench -p patchwarden-agent`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use patchwarden_agent::dpkg;
use patchwarden_agent::facts::FactSources;
use patchwarden_agent::inventory::PackageManager;

const PACKAGES: usize = 2_000;
const RUNS: usize = 50;
const BUDGET: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let dir = tempfile::tempdir().expect("temporary folder");
    let admindir = dir.path().join("var/lib/dpkg");
    fs::create_dir_all(admindir.join("updates")).expect("admin folder");
    let status = status_file(PACKAGES);
    fs::write(admindir.join("status"), &status).expect("status file");
    let sources = fact_root(dir.path());

    let mut parse_times = Vec::with_capacity(RUNS);
    let mut total_times = Vec::with_capacity(RUNS);
    let mut hash = String::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let packages = dpkg::read_database(&admindir).expect("parse the status file");
        let parsed = started.elapsed();
        let inventory = patchwarden_agent::build_inventory(
            PackageManager::Dpkg,
            packages,
            Vec::new(),
            &sources,
            Vec::new(),
        )
        .expect("build the inventory");
        hash = inventory.hash();
        total_times.push(started.elapsed());
        parse_times.push(parsed);
        assert!(inventory.packages.len() > PACKAGES, "multi-arch packages count twice");
    }

    let parse = median(&mut parse_times);
    let total = median(&mut total_times);
    println!(
        "dpkg status: {PACKAGES} packages, {} KiB; median of {RUNS} runs: read and parse {:.2} ms, \
         parse + facts + inventory + hash {:.2} ms (budget {} ms); inventory hash {}",
        status.len() / 1024,
        parse.as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0,
        BUDGET.as_millis(),
        &hash[..16],
    );
    if total > BUDGET {
        eprintln!("over budget");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// A status file of `count` packages in the shape dpkg writes.
fn status_file(count: usize) -> String {
    let mut text = String::with_capacity(count * 900);
    for index in 0..count {
        let name = match index % 97 {
            0 => format!("linux-image-6.1.0-{}-amd64", index / 97),
            _ => format!("lib{}-component{index}", ["ssl", "xml", "gtk", "py", "perl"][index % 5]),
        };
        let status = match index % 200 {
            7 => "hold ok installed",
            13 => "install ok half-configured",
            17 => "deinstall ok config-files",
            _ => "install ok installed",
        };
        let multi_arch = index % 50 == 3;
        let architectures: &[&str] = if multi_arch { &["amd64", "i386"] } else { &["amd64"] };
        for architecture in architectures {
            let _ = write!(
                text,
                "Package: {name}\nStatus: {status}\nPriority: optional\nSection: libs\n\
                 Installed-Size: {size}\nMaintainer: Debian Maintainers <maint{index}@lists.debian.org>\n\
                 Architecture: {architecture}\n{multi}Source: src{src} ({index}.2.{minor}-1)\n\
                 Version: {index}.2.{minor}-1+b{rebuild}\n\
                 Depends: libc6 (>= 2.34), libgcc-s1 (>= 3.0), zlib1g (>= 1:1.2.0), libstdc++6 (>= 11)\n\
                 Breaks: old-component{index} (<< {index}.0)\n",
                size = 100 + index * 7 % 9000,
                multi = if multi_arch { "Multi-Arch: same\n" } else { "" },
                src = index / 3,
                minor = index % 13,
                rebuild = index % 4 + 1,
            );
            if index % 4 == 0 {
                let _ = write!(
                    text,
                    "Conffiles:\n /etc/component{index}/main.conf 0f343b0931126a20f133d67c2b018a3b\n \
                     /etc/component{index}/extra.conf 5d41402abc4b2a76b9719d911017c592\n"
                );
            }
            let _ = write!(
                text,
                "Description: component {index} of a realistic status file\n \
                 This package provides one of the components a typical server carries.\n \
                 It exists so the status file has the size and shape of a real one.\n .\n \
                 The long description spans several continuation lines.\n\
                 Homepage: https://example.org/component{index}\n\n"
            );
        }
    }
    text
}

/// A machine root with the files the facts are read from.
fn fact_root(root: &Path) -> FactSources {
    for (path, text) in [
        ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"),
        ("proc/sys/kernel/osrelease", "6.1.0-3-amd64\n"),
        ("proc/sys/kernel/random/boot_id", "4f1c2b0e-6a3d-4c4e-9a57-0d5b8f3e2a11\n"),
        ("etc/apt/apt.conf.d/20auto-upgrades", "APT::Periodic::Unattended-Upgrade \"1\";\n"),
    ] {
        let path = root.join(path);
        fs::create_dir_all(path.parent().expect("parent folder")).expect("fact folder");
        fs::write(path, text).expect("fact file");
    }
    FactSources::under(root)
}
