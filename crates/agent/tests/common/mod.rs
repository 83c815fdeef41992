//! Sandboxes of real package managers for the agent's tests: built in temporary folders,
//! driven by the real apt, dpkg, rpm and dnf, and never touching the machine's own packages.
//!
//! [`DebSandbox`] is a dpkg root with an apt configuration file (shared/apt-sandbox.md): it
//! builds `.deb` packages with `dpkg-deb`, publishes them to flat repositories indexed with
//! `dpkg-scanpackages -m` (every version stays installable, so a rollback target never goes
//! away) and described by a Release file, and runs apt-get and apt-mark on the root.
//! [`RpmSandbox`] is the same for rpm and dnf: `rpmbuild`, `createrepo_c`, an install root.
//! Helpers panic on failure, as test code may; every program runs through the agent's own
//! [`Invocation`], so its stderr is in the panic message.
//!
//! [`machine_dpkg_status_hash`] lets a test assert that the machine's dpkg database is the same
//! after it ran.

#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;

use patchwarden_agent::apt::AptDriver;
use patchwarden_agent::dnf::DnfDriver;
use patchwarden_agent::process::{DEFAULT_PATH, Invocation, Output};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The SHA-256 of the machine's own `/var/lib/dpkg/status`.
pub fn machine_dpkg_status_hash() -> String {
    let bytes = fs::read("/var/lib/dpkg/status").expect("read the machine's dpkg status");
    hex::encode(Sha256::digest(bytes))
}

/// Runs a tool and panics with its stderr when it fails.
pub fn run(invocation: Invocation) -> Output {
    let shown = invocation.display();
    invocation.run().unwrap_or_else(|error| panic!("{shown}: {error}"))
}

fn tool(program: &str) -> Invocation {
    Invocation::new(program).env("PATH", DEFAULT_PATH).env("LANG", "C.UTF-8")
}

/// One `.deb` to build: control fields and nothing else (no maintainer scripts).
#[derive(Debug, Clone)]
pub struct DebSpec {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub depends: Option<String>,
    pub source: Option<String>,
}

impl DebSpec {
    /// An `Architecture: all` package.
    pub fn new(name: &str, version: &str) -> Self {
        DebSpec {
            name: name.into(),
            version: version.into(),
            architecture: "all".into(),
            depends: None,
            source: None,
        }
    }

    pub fn depends(mut self, depends: &str) -> Self {
        self.depends = Some(depends.into());
        self
    }

    pub fn source(mut self, source: &str) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// What a repository's Release file says about it.
#[derive(Debug, Clone)]
pub struct Release {
    pub origin: String,
    pub label: String,
    pub suite: String,
    pub codename: String,
}

impl Release {
    /// Debian's security archive for bookworm, as its Release file names it.
    pub fn debian_security() -> Self {
        Release {
            origin: "Debian".into(),
            label: "Debian-Security".into(),
            suite: "stable-security".into(),
            codename: "bookworm-security".into(),
        }
    }

    /// A plain repository of this organisation's own.
    pub fn local(label: &str) -> Self {
        Release {
            origin: label.into(),
            label: label.into(),
            suite: "stable".into(),
            codename: "bookworm".into(),
        }
    }
}

/// A flat apt repository in the sandbox.
#[derive(Debug, Clone)]
pub struct DebRepository {
    pub dir: PathBuf,
    pub release: Release,
}

/// A dpkg root with its apt configuration and local repositories.
#[derive(Debug)]
pub struct DebSandbox {
    dir: TempDir,
    repositories: Vec<DebRepository>,
}

impl DebSandbox {
    /// An empty root: no packages installed, no repositories.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let sandbox = DebSandbox { dir, repositories: Vec::new() };
        let root = sandbox.root();
        for folder in [
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
            "build",
        ] {
            fs::create_dir_all(root.join(folder)).expect("sandbox folder");
        }
        fs::write(root.join("var/lib/dpkg/status"), "").expect("empty status");
        fs::write(root.join("var/lib/dpkg/available"), "").expect("empty available");
        fs::write(root.join("etc/apt/sources.list"), "").expect("empty sources.list");
        let root = root.display();
        let config = format!(
            "Dir \"{root}/\";\n\
             Dir::State::status \"{root}/var/lib/dpkg/status\";\n\
             Dir::Etc::Parts \"{root}/etc/apt/apt.conf.d/\";\n\
             Dir::Bin::Methods \"/usr/lib/apt/methods/\";\n\
             Dir::Bin::dpkg \"/usr/bin/dpkg\";\n\
             DPkg::Options {{ \"--root={root}\"; \"--log={root}/var/log/dpkg.log\"; }};\n\
             APT::Architecture \"amd64\";\n\
             APT::Sandbox::User \"root\";\n\
             Acquire::Languages \"none\";\n"
        );
        fs::write(sandbox.apt_config(), config).expect("apt.conf");
        sandbox
    }

    /// The sandbox's root folder (what `/` is to the machine).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn admindir(&self) -> PathBuf {
        self.root().join("var/lib/dpkg")
    }

    pub fn apt_config(&self) -> PathBuf {
        self.dir.path().join("apt.conf")
    }

    /// The agent's apt driver pointed at this sandbox.
    pub fn driver(&self) -> AptDriver {
        AptDriver::new(Some(self.apt_config()), self.admindir())
    }

    /// Adds an empty repository to the sources; publish packages to it with [`Self::publish`].
    pub fn add_repository(&mut self, name: &str, release: Release) -> DebRepository {
        let dir = self.dir.path().join("repos").join(name);
        fs::create_dir_all(&dir).expect("repository folder");
        let repository = DebRepository { dir, release };
        self.repositories.push(repository.clone());
        self.index(&repository);
        let sources: String = self
            .repositories
            .iter()
            .map(|r| format!("deb [trusted=yes] file:{} ./\n", r.dir.display()))
            .collect();
        fs::write(self.root().join("etc/apt/sources.list"), sources).expect("sources.list");
        repository
    }

    /// Builds `.deb` files into `repository` and indexes it again (all versions stay listed).
    pub fn publish(&self, repository: &DebRepository, packages: &[DebSpec]) {
        for package in packages {
            let deb = self.build(package);
            let file = deb.file_name().expect("deb file name");
            fs::copy(&deb, repository.dir.join(file)).expect("copy the package");
        }
        self.index(repository);
    }

    /// Builds one `.deb` with `dpkg-deb` and returns its path.
    pub fn build(&self, package: &DebSpec) -> PathBuf {
        let build = self
            .dir
            .path()
            .join("build")
            .join(format!("{}_{}_{}", package.name, package.version, package.architecture));
        fs::create_dir_all(build.join("DEBIAN")).expect("DEBIAN folder");
        let doc = build.join("usr/share/doc").join(&package.name);
        fs::create_dir_all(&doc).expect("doc folder");
        fs::write(doc.join("VERSION"), format!("{}\n", package.version)).expect("payload");
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Patchwarden tests <tests@example.org>\n",
            package.name, package.version, package.architecture
        );
        if let Some(depends) = &package.depends {
            control.push_str(&format!("Depends: {depends}\n"));
        }
        if let Some(source) = &package.source {
            control.push_str(&format!("Source: {source}\n"));
        }
        control.push_str(&format!("Description: test package {}\n", package.name));
        fs::write(build.join("DEBIAN/control"), control).expect("control file");

        let deb = self
            .dir
            .path()
            .join("build")
            .join(format!("{}_{}_{}.deb", package.name, package.version, package.architecture));
        run(tool("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&build).arg(&deb));
        deb
    }

    /// `dpkg-scanpackages -m` and a Release file with the repository's names and hashes.
    fn index(&self, repository: &DebRepository) {
        let scan = run(tool("dpkg-scanpackages")
            .args(["-m", ".", "/dev/null"])
            .current_dir(&repository.dir));
        fs::write(repository.dir.join("Packages"), &scan.stdout).expect("Packages");
        let digest = hex::encode(Sha256::digest(scan.stdout.as_bytes()));
        let release = &repository.release;
        let text = format!(
            "Origin: {}\nLabel: {}\nSuite: {}\nCodename: {}\nDate: Thu, 03 Dec 2026 10:00:00 UTC\n\
             SHA256:\n {digest} {} Packages\n",
            release.origin,
            release.label,
            release.suite,
            release.codename,
            scan.stdout.len()
        );
        fs::write(repository.dir.join("Release"), text).expect("Release");
    }

    /// An apt program run on the sandbox through its configuration file.
    pub fn apt(&self, program: &str) -> Invocation {
        tool(program).env("APT_CONFIG", self.apt_config()).env("DEBIAN_FRONTEND", "noninteractive")
    }

    /// `apt-get update`.
    pub fn update(&self) {
        run(self.apt("apt-get").args(["-q", "update"]));
    }

    /// `apt-get install -y NAME...` (a name may be `NAME=VERSION`).
    pub fn install(&self, names: &[&str]) {
        run(self.apt("apt-get").args(["-q", "-y", "install"]).args(names));
    }

    /// `apt-get upgrade -y`.
    pub fn upgrade(&self) {
        run(self.apt("apt-get").args(["-q", "-y", "upgrade"]));
    }

    /// `apt-mark hold NAME`.
    pub fn hold(&self, name: &str) {
        run(self.apt("apt-mark").args(["hold", name]));
    }

    /// A `dpkg --root` command on the sandbox.
    pub fn dpkg(&self) -> Invocation {
        let root = self.root();
        tool("dpkg")
            .arg(format!("--root={}", root.display()))
            .arg(format!("--log={}/var/log/dpkg.log", root.display()))
    }
}

/// One rpm package to build: a `noarch` package with one file and no dependencies.
#[derive(Debug, Clone)]
pub struct RpmSpec {
    pub name: String,
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
}

impl RpmSpec {
    pub fn new(name: &str, version: &str, release: &str) -> Self {
        RpmSpec { name: name.into(), epoch: None, version: version.into(), release: release.into() }
    }

    pub fn epoch(mut self, epoch: u32) -> Self {
        self.epoch = Some(epoch);
        self
    }
}

/// An rpm install root with one local dnf repository.
#[derive(Debug)]
pub struct RpmSandbox {
    dir: TempDir,
    advisories: Vec<(String, RpmSpec)>,
}

/// The repository id the sandbox's packages come from.
pub const RPM_REPOSITORY: &str = "pwtest";

impl RpmSandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let sandbox = RpmSandbox { dir, advisories: Vec::new() };
        for folder in ["root", "repo", "reposd", "cache", "rpmbuild/SPECS"] {
            fs::create_dir_all(sandbox.dir.path().join(folder)).expect("sandbox folder");
        }
        let repo = format!(
            "[{RPM_REPOSITORY}]\nname=patchwarden test packages\nbaseurl=file://{}\ngpgcheck=0\nenabled=1\n",
            sandbox.repo().display()
        );
        fs::write(sandbox.dir.path().join("reposd/pwtest.repo"), repo).expect("repo file");
        run(tool("createrepo_c").arg(sandbox.repo()));
        sandbox
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The agent's dnf driver pointed at this sandbox.
    pub fn driver(&self) -> DnfDriver {
        DnfDriver {
            install_root: Some(self.root()),
            release_version: Some("12".into()),
            setopts: self.setopts(),
            ..DnfDriver::system()
        }
    }

    fn setopts(&self) -> Vec<String> {
        vec![
            format!("reposdir={}", self.dir.path().join("reposd").display()),
            format!("cachedir={}", self.dir.path().join("cache").display()),
            "install_weak_deps=False".into(),
            "metadata_expire=0".into(),
        ]
    }

    /// Builds packages with rpmbuild into the repository and indexes it again.
    pub fn publish(&self, packages: &[RpmSpec]) {
        for package in packages {
            self.build(package);
        }
        self.index();
    }

    /// Publishes `package` with a security advisory `id` in the repository's updateinfo.
    pub fn publish_security(&mut self, id: &str, package: RpmSpec) {
        self.build(&package);
        self.advisories.push((id.into(), package));
        self.index();
    }

    fn build(&self, package: &RpmSpec) {
        let topdir = self.dir.path().join("rpmbuild");
        let epoch = package.epoch.map(|epoch| format!("Epoch: {epoch}\n")).unwrap_or_default();
        let spec = format!(
            "Name: {name}\nVersion: {version}\nRelease: {release}\n{epoch}Summary: test package\n\
             License: MIT\nBuildArch: noarch\nAutoReqProv: no\n%description\ntest package\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/doc/{name}\n\
             echo {version} > %{{buildroot}}/usr/share/doc/{name}/VERSION\n\
             %files\n/usr/share/doc/{name}/VERSION\n",
            name = package.name,
            version = package.version,
            release = package.release,
        );
        let spec_path =
            topdir.join("SPECS").join(format!("{}-{}.spec", package.name, package.version));
        fs::write(&spec_path, spec).expect("spec file");
        // --nodeps: checking build dependencies would open the machine's own rpm database.
        run(tool("rpmbuild")
            .arg("--nodeps")
            .arg("--define")
            .arg(format!("_topdir {}", topdir.display()))
            .arg("-bb")
            .arg(&spec_path));
        let built = topdir.join("RPMS/noarch");
        for entry in fs::read_dir(&built).expect("built packages") {
            let path = entry.expect("built package").path();
            fs::rename(&path, self.repo().join(path.file_name().expect("rpm file name")))
                .expect("move the package into the repository");
        }
    }

    fn index(&self) {
        run(tool("createrepo_c").arg("--update").arg(self.repo()));
        if !self.advisories.is_empty() {
            self.write_updateinfo();
        }
        // dnf may keep metadata made within the same second as the new one: drop its cache.
        run(self.dnf().args(["clean", "all"]));
    }

    fn write_updateinfo(&self) {
        let updateinfo = self.dir.path().join("updateinfo.xml");
        fs::write(&updateinfo, self.updateinfo()).expect("updateinfo.xml");
        run(tool("modifyrepo_c")
            .arg("--mdtype=updateinfo")
            .arg(&updateinfo)
            .arg(self.repo().join("repodata")));
    }

    fn updateinfo(&self) -> String {
        let updates: String = self
            .advisories
            .iter()
            .map(|(id, package)| {
                format!(
                    "<update from=\"security@example.org\" status=\"stable\" type=\"security\" version=\"2.0\">\
                     <id>{id}</id><title>{id}</title><issued date=\"2026-12-01 00:00:00\"/>\
                     <severity>Important</severity><description>test advisory</description>\
                     <pkglist><collection short=\"pw\"><name>pw</name>\
                     <package name=\"{name}\" version=\"{version}\" release=\"{release}\" epoch=\"{epoch}\" arch=\"noarch\">\
                     <filename>{name}-{version}-{release}.noarch.rpm</filename></package>\
                     </collection></pkglist></update>",
                    name = package.name,
                    version = package.version,
                    release = package.release,
                    epoch = package.epoch.unwrap_or(0),
                )
            })
            .collect();
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>{updates}</updates>\n")
    }

    /// A dnf command on the install root, plugins off.
    pub fn dnf(&self) -> Invocation {
        tool("dnf")
            .args(["-y", "-q", "--noplugins", "--releasever=12"])
            .arg(format!("--installroot={}", self.root().display()))
            .args(self.setopts().into_iter().map(|option| format!("--setopt={option}")))
    }

    /// `dnf install NAME...` (a name may be `NAME-VERSION`).
    pub fn install(&self, names: &[&str]) {
        run(self.dnf().arg("install").args(names));
    }
}

/// Additions for the job executor's tests.
impl DebSandbox {
    /// Builds `name` `version` with one conffile `path` (absolute, e.g. `/etc/pw.conf`) holding
    /// `content`, and no maintainer scripts, into `repository`, and indexes it again.
    pub fn publish_with_conffile(
        &self,
        repository: &DebRepository,
        name: &str,
        version: &str,
        path: &str,
        content: &str,
    ) {
        let build = self.dir.path().join("build").join(format!("{name}_{version}_all-conffile"));
        fs::create_dir_all(build.join("DEBIAN")).expect("DEBIAN folder");
        let file = build.join(path.trim_start_matches('/'));
        fs::create_dir_all(file.parent().expect("conffile folder")).expect("conffile folder");
        fs::write(&file, content).expect("conffile");
        fs::write(build.join("DEBIAN/conffiles"), format!("{path}\n")).expect("conffiles");
        let control = format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\n\
             Maintainer: Patchwarden tests <tests@example.org>\nDescription: test package {name}\n"
        );
        fs::write(build.join("DEBIAN/control"), control).expect("control file");
        let deb = repository.dir.join(format!("{name}_{version}_all.deb"));
        run(tool("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&build).arg(&deb));
        self.index(repository);
    }

    /// Takes `name` `version` (an `all` package) out of `repository` and indexes it again; the
    /// sandbox still sees it until `apt-get update`.
    pub fn withdraw(&self, repository: &DebRepository, name: &str, version: &str) {
        fs::remove_file(repository.dir.join(format!("{name}_{version}_all.deb")))
            .expect("the package is in the repository");
        self.index(repository);
    }
}

/// Additions for the job executor's tests.
impl RpmSandbox {
    /// Takes `name-version-release.noarch.rpm` out of the repository and indexes it again.
    pub fn withdraw(&self, name: &str, version: &str, release: &str) {
        fs::remove_file(self.repo().join(format!("{name}-{version}-{release}.noarch.rpm")))
            .expect("the package is in the repository");
        self.index();
    }
}

/// Additions for the end-to-end tests.
impl RpmSandbox {
    /// Writes the local repository into the install root's own `etc/yum.repos.d`, as a real
    /// machine keeps its repositories, with `metadata_expire=0` so that every dnf call sees a
    /// new publication: `patchwarden-agent run --dnf-installroot ROOT` then finds it without
    /// the `--setopt` options [`Self::driver`] passes.
    pub fn configure_root_repository(&self) {
        let folder = self.root().join("etc/yum.repos.d");
        fs::create_dir_all(&folder).expect("the root's repository folder");
        let repo = format!(
            "[{RPM_REPOSITORY}]\nname=patchwarden test packages\nbaseurl=file://{}\ngpgcheck=0\n\
             enabled=1\nmetadata_expire=0\n",
            self.repo().display()
        );
        fs::write(folder.join(format!("{RPM_REPOSITORY}.repo")), repo).expect("repo file");
    }
}

/// Additions for the end-to-end tests.
impl DebSandbox {
    /// Appends `text` to the sandbox's apt configuration file (the one `APT_CONFIG` names).
    pub fn add_apt_config(&self, text: &str) {
        use std::io::Write;
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(self.apt_config())
            .expect("the sandbox's apt.conf");
        file.write_all(text.as_bytes()).expect("append to apt.conf");
    }
}
