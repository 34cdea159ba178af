//! The program a command runs, found the way `execvp` and the kernel would
//! find it (PATH, then a `#!` line and `/usr/bin/env`), and how to start it
//! through the patched loader so that it sees what it would see without
//! dlfm: `LOADER --argv0 ARGV0 PROGRAM ARGS...` (glibc ≥ 2.33; older
//! loaders get the program's path as argv[0]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How many leading bytes of a file dlfm reads to learn what it is: its
/// ELF and program headers, interpreter and notes lie there in every
/// program linked by binutils, lld or mold.
const HEAD: u64 = 1 << 20;

/// The program a command word names.
#[derive(Debug, Clone)]
pub struct Target {
    /// What `execvp` would run: the word, or the PATH entry it found
    /// (absolute; links are not resolved: a venv's `bin/python` stays).
    pub path: PathBuf,
    /// The argv[0] the program gets without dlfm.
    pub argv0: OsString,
    /// For a `#!` script: the script's path as the interpreter gets it and
    /// the `#!` line's optional argument.
    pub script: Option<(OsString, Option<OsString>)>,
    /// The ELF program that runs (`path`, or the script's interpreter).
    pub elf: PathBuf,
    /// What the ELF program's headers say.
    pub identity: Identity,
    /// The name the kernel gives the process (`comm`: what `ps` and
    /// `pgrep` show): the executed file's name (a script's own, unless its
    /// `#!` line goes through env).
    pub comm: OsString,
}

/// An ELF file's identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its PT_INTERP.
    pub interp: Option<String>,
    /// Its GNU build-id, else its inode, size and change time.
    pub id: String,
    /// Whether it carries the dlfm wrapper (linked with libdlfm_wrap.a).
    pub linked: bool,
}

/// Why a program cannot run through dlfm (it then runs plain).
pub type NotSupported = String;

/// Shells: a shell script or `bash -c` is most often a launcher or a job
/// script of its own, whose programs dlfm does not see; a shell starts fast
/// anyway. dlfm runs it plain and says how to name the program.
const SHELLS: [&str; 8] = ["sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish"];

/// Refuses a shell (see [`SHELLS`]).
fn not_a_shell(elf: &Path, what: &Path) -> Result<(), NotSupported> {
    let name = elf.file_name().and_then(OsStr::to_str).unwrap_or("");
    if SHELLS.contains(&name) {
        return Err(format!(
            "{} runs in the shell {}: dlfm caches the program a line names, not a script's \
             (put dlfm run in front of the program inside it, or use --program-at N)",
            what.display(),
            elf.display()
        ));
    }
    Ok(())
}

/// Resolves the command word `word` (see the module doc).
pub fn resolve(word: &OsStr) -> Result<Target, NotSupported> {
    let path = find_in_path(word)
        .ok_or_else(|| format!("cannot find the program `{}`", Path::new(word).display()))?;
    let head = read_head(&path)?;
    if let Some(line) = head.strip_prefix(b"#!") {
        return script(word, path.clone(), line);
    }
    not_a_shell(&path, &path)?;
    let identity = elf_identity(&path, &head)?;
    Ok(Target {
        argv0: word.to_os_string(),
        comm: file_name(&path),
        elf: path.clone(),
        path,
        script: None,
        identity,
    })
}

/// A `#!` script: the interpreter (through `/usr/bin/env NAME` too) must be
/// an ELF program.
fn script(word: &OsStr, path: PathBuf, line: &[u8]) -> Result<Target, NotSupported> {
    let line = line.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = trim(line);
    let (interp, arg) = match line.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(i) => (&line[..i], Some(trim(&line[i..]))),
        None => (line, None),
    };
    let arg = arg.filter(|a| !a.is_empty());
    let interp = PathBuf::from(OsStr::from_bytes(interp));
    let script_arg = if word.as_bytes().contains(&b'/') {
        word.to_os_string()
    } else {
        path.clone().into_os_string()
    };
    let (argv0, elf, arg, comm) = if interp.file_name() == Some(OsStr::new("env")) {
        let Some(name) = arg.filter(|a| !a.starts_with(b"-") && !a.contains(&b'=')) else {
            return Err(format!(
                "{}'s `#!` line runs env with options: not followed",
                path.display()
            ));
        };
        let name = OsStr::from_bytes(name);
        let found = find_in_path(name).ok_or_else(|| {
            format!(
                "cannot find {}'s interpreter `{}`",
                path.display(),
                Path::new(name).display()
            )
        })?;
        let comm = file_name(&found);
        (name.to_os_string(), found, None, comm)
    } else {
        (
            interp.clone().into_os_string(),
            interp,
            arg.map(|a| OsStr::from_bytes(a).to_os_string()),
            file_name(&path),
        )
    };
    not_a_shell(&elf, &path)?;
    let head = read_head(&elf)?;
    if head.starts_with(b"#!") {
        return Err(format!(
            "{}'s interpreter {} is itself a script",
            path.display(),
            elf.display()
        ));
    }
    let identity = elf_identity(&elf, &head)?;
    Ok(Target {
        path,
        argv0,
        script: Some((script_arg, arg)),
        elf,
        identity,
        comm,
    })
}

fn file_name(p: &Path) -> OsString {
    p.file_name()
        .map_or_else(|| "program".into(), OsStr::to_os_string)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// The first [`HEAD`] bytes of `path`.
fn read_head(path: &Path) -> Result<Vec<u8>, NotSupported> {
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(HEAD).read_to_end(&mut head))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(head)
}

/// The identity of the ELF program at `path` whose first bytes are `head`;
/// refuses what ld.so cannot start for dlfm: another machine's program, a
/// static one, a set-user-ID one (ld.so run by hand would drop the
/// privilege).
fn elf_identity(path: &Path, head: &[u8]) -> Result<Identity, NotSupported> {
    let id = dlfm_elf::identity(head).map_err(|e| format!("{}: {e}", path.display()))?;
    if Some(id.arch) != dlfm_elf::Arch::host() {
        return Err(format!(
            "{} is a program for another machine ({:?})",
            path.display(),
            id.arch
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o6000 != 0 {
        return Err(format!(
            "{} is set-user-ID or set-group-ID: it runs with its owner's rights, which dlfm \
             would drop",
            path.display()
        ));
    }
    if id.interp.is_none() {
        return Err(format!(
            "{} is statically linked: it makes no lookups for dlfm to cache",
            path.display()
        ));
    }
    Ok(Identity {
        interp: id.interp,
        id: id
            .build_id
            .map_or_else(|| stat_id(&meta), |b| format!("build-id:{b}")),
        linked: id.wrapper,
    })
}

/// A file's identity when it has no build-id: device, inode, size and
/// change time (which any rewrite of the file moves).
pub fn stat_id(m: &std::fs::Metadata) -> String {
    format!(
        "stat:{}:{}:{}:{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// The identity of the loader at `path` (its build-id, else its stat).
pub fn loader_id(path: &Path) -> Result<String, NotSupported> {
    let head = read_head(path)?;
    let id = dlfm_elf::identity(&head).map_err(|e| format!("{}: {e}", path.display()))?;
    match id.build_id {
        Some(b) => Ok(format!("build-id:{b}")),
        None => std::fs::metadata(path)
            .map(|m| stat_id(&m))
            .map_err(|e| format!("{}: {e}", path.display())),
    }
}

/// What `execvp` would run for `word`: `word` itself when it holds a `/`
/// (made absolute), else the first executable regular file of that name in
/// PATH's directories.
pub fn find_in_path(word: &OsStr) -> Option<PathBuf> {
    if word.is_empty() {
        return None;
    }
    if word.as_bytes().contains(&b'/') {
        let p = std::path::absolute(word).ok()?;
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let candidate = PathBuf::from(OsString::from_vec(dir.to_vec())).join(word);
        if is_executable(&candidate) {
            return std::path::absolute(&candidate).ok();
        }
    }
    None
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Target {
    /// The words that start this program through `loader` (the patched
    /// copy of its ld.so), `with_argv0` when the loader takes `--argv0`.
    /// A program linked with the wrapper starts through its own loader:
    /// its words are the command's.
    pub fn invocation(&self, loader: &Path, with_argv0: bool, word: &OsStr) -> Vec<OsString> {
        if self.identity.linked {
            return vec![word.to_os_string()];
        }
        let mut out: Vec<OsString> = vec![loader.into()];
        if with_argv0 {
            out.push("--argv0".into());
            out.push(self.argv0.clone());
        }
        out.push(self.elf.clone().into_os_string());
        if let Some((script, arg)) = &self.script {
            out.extend(arg.clone());
            out.push(script.clone());
        }
        out
    }
}
