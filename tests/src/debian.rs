//! glibc builds from Debian's archive, for the loader matrix: an apt setup of
//! the tests' own in `target/debian-glibc` (its sources list, package lists
//! and downloads; the machine's apt configuration is neither read nor
//! changed), libc6 of each suite and architecture unpacked with
//! `dpkg-deb -x`, and sysroots of the oldest glibc (bullseye, amd64 and
//! arm64) that test programs are built against: glibc runs programs linked against any
//! older version. Everything stays under target/, so a rerun downloads
//! nothing; when the archive has moved on (a point release), the lists are
//! updated once and the download retried.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::artifacts::target_dir;
use crate::scenario::assert_ok;

/// The packages whose versions the tests look up.
const PACKAGES: &[&str] = &[
    "libc6:amd64",
    "libc6:arm64",
    "libc6-dev:amd64",
    "libc6-dev:arm64",
    "linux-libc-dev:amd64",
    "linux-libc-dev:arm64",
    "python3.11-minimal:arm64",
    "libpython3.11-minimal:arm64",
    "libpython3.11-stdlib:arm64",
    "libpython3.11-dev:arm64",
    "zlib1g:arm64",
    "libexpat1:arm64",
    "libffi8:arm64",
    "libbz2-1.0:arm64",
    "liblzma5:arm64",
    "libuuid1:arm64",
    "libcrypt1:arm64",
];

/// Debian 12's arm64 packages that [`python_arm64`] unpacks: python3.11,
/// its standard library and headers, and the libraries they need.
const PYTHON_ARM64: &[&str] = &[
    "libc6",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libpython3.11-dev",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "libuuid1",
    "libcrypt1",
];

/// Debian 12's python3.11 for arm64, unpacked (not installed: run it
/// through its loader with [`ArmPython::lib_path`] and
/// [`ArmPython::home`]).
#[derive(Debug, Clone)]
pub struct ArmPython {
    /// Where the packages are unpacked.
    pub root: PathBuf,
}

impl ArmPython {
    /// The interpreter.
    pub fn python(&self) -> PathBuf {
        self.root.join("usr/bin/python3.11")
    }

    /// Its dynamic loader (bookworm's libc6 is not /usr-merged).
    pub fn ldso(&self) -> PathBuf {
        let link = self
            .root
            .join("lib/aarch64-linux-gnu/ld-linux-aarch64.so.1");
        fs::canonicalize(&link).unwrap_or(link)
    }

    /// The library search path its libraries are found on.
    pub fn lib_path(&self) -> String {
        let r = self.root.display();
        format!("{r}/lib/aarch64-linux-gnu:{r}/usr/lib/aarch64-linux-gnu")
    }

    /// Its PYTHONHOME (the interpreter is run from elsewhere).
    pub fn home(&self) -> PathBuf {
        self.root.join("usr")
    }

    /// Its standard library.
    pub fn stdlib(&self) -> PathBuf {
        self.root.join("usr/lib/python3.11")
    }

    /// The include directories an extension module is built with (Python.h
    /// and the arm64 pyconfig.h it includes).
    pub fn includes(&self) -> Vec<PathBuf> {
        vec![
            self.root.join("usr/include/python3.11"),
            self.root.join("usr/include"),
        ]
    }
}

/// Debian 12's arm64 python3.11, downloaded and unpacked on first use.
pub fn python_arm64() -> ArmPython {
    let _one = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let apt = Apt::new();
    let _lock = apt.lock();
    let packages: Vec<(&str, String)> = PYTHON_ARM64
        .iter()
        .map(|p| (*p, apt.version(p, "arm64", "bookworm")))
        .collect();
    let refs: Vec<(&str, &str, &str)> = packages
        .iter()
        .map(|(p, v)| (*p, "arm64", v.as_str()))
        .collect();
    let root = apt.dir.join("python-bookworm-arm64");
    apt.unpack(&root, &refs);
    let py = ArmPython { root };
    // Debian compiles the standard library when it installs the package;
    // the host's python3 is the same version, whose bytecode is the same.
    let out = Command::new("python3")
        .args(["-m", "compileall", "-q", "-j", "0"])
        .arg(py.stdlib())
        .output()
        .expect("run python3 -m compileall");
    assert_ok(&out, "compiling the arm64 standard library");
    write_conda_manifest(&py.home());
    py
}

/// Names every file under `prefix` in a conda-style manifest
/// (`prefix/conda-meta/python.json`, `"files"` relative to `prefix`), as
/// an installed Python on an aarch64 cluster (conda's, Spack's) is named:
/// what tells dlfm its data files are package content. (Unpacked, the
/// packages have no entry in the machine's dpkg database.)
fn write_conda_manifest(prefix: &Path) {
    fn walk(dir: &Path, prefix: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).expect("read the unpacked tree").flatten() {
            let path = e.path();
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => walk(&path, prefix, out),
                Ok(_) => out.push(path.strip_prefix(prefix).unwrap().display().to_string()),
                Err(_) => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(prefix, prefix, &mut files);
    files.retain(|f| !f.starts_with("conda-meta/"));
    files.sort();
    let quoted: Vec<String> = files.iter().map(|f| format!("{f:?}")).collect();
    let meta = prefix.join("conda-meta");
    fs::create_dir_all(&meta).expect("create conda-meta");
    fs::write(
        meta.join("python-3.11.json"),
        format!(
            "{{\"name\": \"python\", \"files\": [{}]}}\n",
            quoted.join(", ")
        ),
    )
    .expect("write the conda manifest");
}

/// Debian's suites in the matrix: (suite, release name for messages).
pub const SUITES: [(&str, &str); 4] = [
    ("bullseye", "Debian 11"),
    ("bookworm", "Debian 12"),
    ("trixie", "Debian 13"),
    ("sid", "Debian unstable"),
];

/// One suite's glibc for one architecture, unpacked.
#[derive(Debug, Clone)]
pub struct Glibc {
    /// The suite (bullseye, ...).
    pub suite: String,
    /// Debian's architecture name (amd64, arm64).
    pub arch: String,
    /// The libc6 package's version.
    pub version: String,
    /// Where the package is unpacked.
    pub root: PathBuf,
}

impl Glibc {
    /// Debian's multiarch directory name for the architecture.
    fn multiarch(&self) -> &'static str {
        match self.arch.as_str() {
            "arm64" => "aarch64-linux-gnu",
            _ => "x86_64-linux-gnu",
        }
    }

    /// The directory holding libc.so.6 (under lib/ before the /usr merge,
    /// under usr/lib/ after it).
    pub fn libdir(&self) -> PathBuf {
        ["lib", "usr/lib"]
            .iter()
            .map(|d| self.root.join(d).join(self.multiarch()))
            .find(|d| d.join("libc.so.6").exists())
            .unwrap_or_else(|| panic!("no libc.so.6 in {}", self.root.display()))
    }

    /// The dynamic loader (the file itself, not a link to it).
    pub fn ldso(&self) -> PathBuf {
        let name = match self.arch.as_str() {
            "arm64" => "ld-linux-aarch64.so.1",
            _ => "ld-linux-x86-64.so.2",
        };
        let link = self.libdir().join(name);
        let target = fs::read_link(&link).map_or(link.clone(), |t| self.libdir().join(t));
        assert!(target.is_file(), "{} is not a file", target.display());
        target
    }

    /// "Debian 11 (bullseye) amd64, glibc 2.31-13+deb11u11".
    pub fn describe(&self) -> String {
        let release = SUITES
            .iter()
            .find(|(s, _)| *s == self.suite)
            .map_or("Debian", |(_, r)| r);
        format!(
            "{release} ({}) {}, glibc {}",
            self.suite, self.arch, self.version
        )
    }
}

/// One setup at a time, across the test threads and test processes.
static SETUP: Mutex<()> = Mutex::new(());

/// The suite's libc6 for `arch`, downloaded and unpacked on first use.
pub fn glibc(suite: &str, arch: &str) -> Glibc {
    let _one = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let apt = Apt::new();
    let _lock = apt.lock();
    let version = apt.version("libc6", arch, suite);
    let root = apt.dir.join("root").join(format!("{suite}-{arch}"));
    apt.unpack(&root, &[("libc6", arch, &version)]);
    Glibc {
        suite: suite.into(),
        arch: arch.into(),
        version,
        root,
    }
}

/// A sysroot of bullseye's glibc for `arch` (amd64, arm64: libc6,
/// libc6-dev, linux-libc-dev) for building test programs that every newer
/// glibc runs.
pub fn sysroot(arch: &str) -> PathBuf {
    let _one = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let apt = Apt::new();
    let _lock = apt.lock();
    let packages: Vec<(&str, &str, String)> = ["libc6", "libc6-dev", "linux-libc-dev"]
        .iter()
        .map(|p| (*p, arch, apt.version(p, arch, "bullseye")))
        .collect();
    let root = apt.dir.join(format!("sysroot-bullseye-{arch}"));
    let refs: Vec<(&str, &str, &str)> = packages
        .iter()
        .map(|(p, a, v)| (*p, *a, v.as_str()))
        .collect();
    apt.unpack(&root, &refs);
    root
}

/// apt, pointed at the tests' own directory.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new() -> Apt {
        let dir = target_dir().join("debian-glibc");
        for d in [
            "lists/partial",
            "cache/archives/partial",
            "debs",
            "apt.conf.d",
        ] {
            fs::create_dir_all(dir.join(d)).expect("create the apt directories");
        }
        let suites: String = SUITES
            .iter()
            .map(|(s, _)| {
                format!(
                    "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {s} main\n"
                )
            })
            .collect();
        fs::write(dir.join("sources.list"), suites).expect("write the sources list");
        Apt { dir }
    }

    /// Holds the directory against other test processes until dropped.
    fn lock(&self) -> fs::File {
        use std::os::fd::AsRawFd;
        let f = fs::File::create(self.dir.join(".lock")).expect("create the lock file");
        // SAFETY: flock on a descriptor this function owns; the lock goes
        // with the file when the caller drops it.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "lock {}", self.dir.display());
        f
    }

    /// apt's configuration, written to `apt.conf` and named by APT_CONFIG:
    /// read before anything else, so the machine's apt.conf.d (which may
    /// ask for AppStream data or turn the package cache off) is not read.
    /// Signatures are checked; a Release file's end of validity is not
    /// (mirrors that serve a snapshot of the archive are common).
    fn config(&self) -> PathBuf {
        let d = self.dir.display();
        let conf = format!(
            "Dir::Etc::Main \"/dev/null\";\n\
             Dir::Etc::Parts \"{d}/apt.conf.d\";\n\
             Dir::Etc::SourceList \"{d}/sources.list\";\n\
             Dir::Etc::SourceParts \"{d}/apt.conf.d\";\n\
             Dir::Etc::Preferences \"/dev/null\";\n\
             Dir::Etc::PreferencesParts \"{d}/apt.conf.d\";\n\
             Dir::State::Lists \"{d}/lists\";\n\
             Dir::State::status \"/dev/null\";\n\
             Dir::Cache \"{d}/cache\";\n\
             APT::Architectures {{ \"amd64\"; \"arm64\"; }};\n\
             APT::Sandbox::User \"root\";\n\
             Acquire::Languages \"none\";\n\
             Acquire::GzipIndexes \"true\";\n\
             Acquire::Check-Valid-Until \"false\";\n\
             Debug::NoLocking \"1\";\n"
        );
        let path = self.dir.join("apt.conf");
        fs::write(&path, conf).expect("write apt.conf");
        path
    }

    fn run(&self, tool: &str, args: &[&str], cwd: &Path) -> Result<String, String> {
        let out = Command::new(tool)
            .env("APT_CONFIG", self.config())
            .args(args)
            .current_dir(cwd)
            .output()
            .map_err(|e| format!("cannot run {tool}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Fetches the package lists and writes down the versions the tests use
    /// (`versions.txt`, apt-cache madison's lines: reading apt's lists takes
    /// seconds each time, this file nothing).
    fn update(&self) {
        self.run("apt-get", &["-q", "update"], &self.dir)
            .unwrap_or_else(|e| panic!("fetching Debian's package lists failed: {e}"));
        let text = self
            .run("apt-cache", &[&["madison"], PACKAGES].concat(), &self.dir)
            .unwrap_or_else(|e| panic!("{e}"));
        fs::write(self.dir.join("versions.txt"), text).expect("write versions.txt");
    }

    /// The version of `package` for `arch` in `suite`.
    fn version(&self, package: &str, arch: &str, suite: &str) -> String {
        let found = |text: &str| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split('|').map(str::trim).collect();
                (f.len() == 3
                    && (f[0] == package || f[0] == format!("{package}:{arch}"))
                    && f[2].ends_with(&format!(" {suite}/main {arch} Packages")))
                .then(|| f[1].to_string())
            })
        };
        let known = fs::read_to_string(self.dir.join("versions.txt")).unwrap_or_default();
        if let Some(v) = found(&known) {
            return v;
        }
        self.update();
        let text = fs::read_to_string(self.dir.join("versions.txt")).unwrap_or_default();
        found(&text).unwrap_or_else(|| panic!("{suite} has no {package}:{arch}:\n{text}"))
    }

    /// Unpacks the packages into `root`, unless it already holds exactly them.
    fn unpack(&self, root: &Path, packages: &[(&str, &str, &str)]) {
        let want: String = packages
            .iter()
            .map(|(p, a, v)| format!("{p}:{a}={v}\n"))
            .collect();
        let marker = root.join(".dlfm-unpacked");
        if fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
            return;
        }
        let _ = fs::remove_dir_all(root);
        fs::create_dir_all(root).expect("create the unpack directory");
        for (p, a, v) in packages {
            let deb = self.download(p, a, v);
            let out = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(root)
                .output()
                .expect("run dpkg-deb");
            assert_ok(&out, &format!("dpkg-deb -x {}", deb.display()));
        }
        relative_links(root, root);
        fs::write(&marker, want).expect("write the unpack marker");
    }

    /// The .deb of `package:arch=version`, downloaded unless already there.
    fn download(&self, package: &str, arch: &str, version: &str) -> PathBuf {
        let debs = self.dir.join("debs");
        let name = format!("{package}_{}_{arch}.deb", version.replace(':', "%3a"));
        let deb = debs.join(&name);
        if deb.exists() {
            return deb;
        }
        let spec = format!("{package}:{arch}={version}");
        if self
            .run("apt-get", &["-q", "download", &spec], &debs)
            .is_err()
        {
            self.update();
            self.run("apt-get", &["-q", "download", &spec], &debs)
                .unwrap_or_else(|e| panic!("downloading {spec} failed: {e}"));
        }
        assert!(deb.exists(), "apt-get download wrote no {name}");
        deb
    }
}

/// Turns every absolute symbolic link under `dir` into one relative to
/// `root` (a package's `/lib64/ld-linux-x86-64.so.2 -> /lib/...` would
/// otherwise name the machine's own loader).
fn relative_links(dir: &Path, root: &Path) {
    for e in fs::read_dir(dir).expect("read the unpacked tree").flatten() {
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            relative_links(&path, root);
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).expect("read a link");
            if let Ok(inside) = target.strip_prefix("/") {
                let depth = path
                    .parent()
                    .and_then(|p| p.strip_prefix(root).ok())
                    .map_or(0, |p| p.components().count());
                let mut rel = PathBuf::new();
                for _ in 0..depth {
                    rel.push("..");
                }
                rel.push(inside);
                fs::remove_file(&path).expect("remove an absolute link");
                std::os::unix::fs::symlink(rel, &path).expect("write a relative link");
            }
        }
    }
}
