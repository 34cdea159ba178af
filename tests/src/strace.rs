//! Running a program under strace and reading back the calls that reached
//! the kernel: name, path argument, the file behind a descriptor argument
//! (strace -y), result and errno.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// The calls traced: every file-system call ld.so or libc could make.
pub const TRACED: &str = "openat,open,newfstatat,fstat,stat,lstat,statx,read,pread64,mmap,close,access,faccessat,faccessat2,lseek,readlink,readlinkat,getcwd,getdents64,execve";

/// Calls that look a path up.
pub const LOOKUPS: [&str; 8] = [
    "openat",
    "open",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "access",
    "faccessat",
];

/// The traced calls whose first string argument is a path.
const PATH_CALLS: [&str; 12] = [
    "execve",
    "openat",
    "open",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
];

/// Every absolute path looked up in `calls`: in a run without dlfm, what
/// the pilot records.
pub fn looked_up(calls: &[Call]) -> BTreeSet<String> {
    calls
        .iter()
        .filter(|c| LOOKUPS.contains(&c.name.as_str()))
        .filter_map(|c| c.path.clone())
        .filter(|p| p.starts_with('/'))
        .collect()
}

/// Calls of `calls` that touch a path in `recorded` (looked up, or through
/// a descriptor), and ENOENT results: what a replay must not show.
pub fn touches(calls: &[Call], recorded: &BTreeSet<String>) -> Vec<String> {
    calls
        .iter()
        .filter(|c| {
            (LOOKUPS.contains(&c.name.as_str())
                && c.path.as_ref().is_some_and(|p| recorded.contains(p)))
                || c.fd_path.as_ref().is_some_and(|p| recorded.contains(p))
                || c.errno.as_deref() == Some("ENOENT")
        })
        .map(|c| c.raw.clone())
        .collect()
}

/// One traced system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The process that made it.
    pub pid: u32,
    /// The system call's name.
    pub name: String,
    /// Its first string argument (a path).
    pub path: Option<String>,
    /// The file behind its descriptor argument, as strace -y shows it.
    pub fd_path: Option<String>,
    /// Its result, when numeric.
    pub result: Option<i64>,
    /// The errno name when it failed.
    pub errno: Option<String>,
    /// The whole line.
    pub raw: String,
}

impl Call {
    /// Whether the call names a path under `dir`, or works on a descriptor
    /// of a file under it.
    pub fn is_under(&self, dir: &str) -> bool {
        self.path
            .as_deref()
            .or(self.fd_path.as_deref())
            .is_some_and(|p| p.starts_with(dir))
    }
}

/// The calls of each process that executed (successfully) a program whose
/// path `started` accepts, by pid: the ranks of a launcher line.
pub fn per_process(
    calls: Vec<Call>,
    started: impl Fn(&str) -> bool,
) -> std::collections::BTreeMap<u32, Vec<Call>> {
    let pids: BTreeSet<u32> = calls
        .iter()
        .filter(|c| {
            c.name == "execve" && c.result == Some(0) && c.path.as_deref().is_some_and(&started)
        })
        .map(|c| c.pid)
        .collect();
    let mut per = std::collections::BTreeMap::new();
    for c in calls.into_iter().filter(|c| pids.contains(&c.pid)) {
        per.entry(c.pid).or_insert_with(Vec::new).push(c);
    }
    per
}

/// Runs `cmd` (its program, arguments, environment and directory) under
/// strace -f, writing the trace to `log`.
pub fn run_traced(cmd: &Command, log: &Path) -> Output {
    run_traced_as(cmd, log, None)
}

/// Like [`run_traced`]; with `user`, strace (run as root) starts the program
/// as that user (`strace -u`), so that a setuid program really runs with its
/// owner's privileges under the trace.
pub fn run_traced_as(cmd: &Command, log: &Path, user: Option<&str>) -> Output {
    let mut traced = Command::new("strace");
    if let Some(user) = user {
        traced.args(["-u", user]);
    }
    traced
        .args(["-f", "-qq", "-y", "-s", "256", "-e"])
        .arg(format!("trace={TRACED}"))
        .arg("-o")
        .arg(log)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => traced.env(k, v),
            None => traced.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        traced.current_dir(d);
    }
    traced
        .output()
        .expect("cannot run strace (apt-get install strace)")
}

/// Reads a trace written by `run_traced`.
pub fn parse(log: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(log).expect("trace file");
    parse_text(&text)
}

/// Parses strace -f -y output, joining `<unfinished ...>` / `resumed>` pairs.
pub fn parse_text(text: &str) -> Vec<Call> {
    let mut pending: Vec<(u32, String)> = Vec::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.trim_start().split_once(char::is_whitespace) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.push((pid, head.to_string()));
            continue;
        }
        let full = if let Some(tail) = rest.strip_prefix("<... ") {
            let Some(i) = pending.iter().position(|(p, _)| *p == pid) else {
                continue;
            };
            let (_, head) = pending.remove(i);
            let tail = tail.split_once("resumed>").map_or(tail, |(_, t)| t);
            format!("{head}{tail}")
        } else {
            rest.to_string()
        };
        if let Some(call) = parse_call(pid, &full) {
            calls.push(call);
        }
    }
    calls
}

/// Parses qemu-user's `-strace` output (`PID name(args) = result`, failures
/// as `= -1 errno=N (text)`) into the same calls; qemu shows no file behind
/// a descriptor, so `fd_path` is None (a recorded file is still seen when
/// it is opened or looked up).
pub fn parse_qemu(text: &str) -> Vec<Call> {
    text.lines()
        .filter_map(|line| {
            let (pid, rest) = line.trim_start().split_once(' ')?;
            let pid = pid.parse::<u32>().ok()?;
            let rest = match rest.rsplit_once(" = -1 errno=") {
                Some((head, tail)) => {
                    let n = tail.split_whitespace().next()?.parse::<i32>().ok()?;
                    format!("{head} = -1 {}", errno_name(n))
                }
                None => rest.to_string(),
            };
            parse_call(pid, &rest)
        })
        .collect()
}

/// The name of errno `n` (the few a loader meets; others as `E<n>`).
fn errno_name(n: i32) -> String {
    match n {
        2 => "ENOENT".into(),
        13 => "EACCES".into(),
        20 => "ENOTDIR".into(),
        38 => "ENOSYS".into(),
        _ => format!("E{n}"),
    }
}

fn parse_call(pid: u32, line: &str) -> Option<Call> {
    let open = line.find('(')?;
    let name = line[..open].trim().to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    // strace pads a resumed call's result: `...args )      = 0`.
    let body = &line[open + 1..];
    let (args, result) = match body.rsplit_once(" = ") {
        Some((a, r)) => (a.trim_end().strip_suffix(')').unwrap_or(a), r),
        None => (body, ""),
    };
    // A call on a descriptor (read, pread64, getdents64) shows the data it
    // read as a string: not a path.
    let path = PATH_CALLS
        .contains(&name.as_str())
        .then(|| first_string(args))
        .flatten();
    let fd_path = args.split(", ").find_map(|tok| {
        let tok = tok.trim();
        let lt = tok.find('<')?;
        (lt > 0 && tok[..lt].chars().all(|c| c.is_ascii_digit()) && tok.ends_with('>'))
            .then(|| tok[lt + 1..tok.len() - 1].to_string())
    });
    let mut words = result.split_whitespace();
    let value = words.next().unwrap_or("");
    let value = value.split('<').next().unwrap_or(value);
    let result_num = value.strip_prefix("0x").map_or_else(
        || value.parse::<i64>().ok(),
        |h| u64::from_str_radix(h, 16).ok().map(|v| v as i64),
    );
    let errno = (result_num == Some(-1))
        .then(|| words.next().unwrap_or("").to_string())
        .filter(|e| !e.is_empty());
    Some(Call {
        pid,
        name,
        path,
        fd_path,
        result: result_num,
        errno,
        raw: line.to_string(),
    })
}

/// The first double-quoted string of `args`, unescaped enough for paths.
fn first_string(args: &str) -> Option<String> {
    let start = args.find('"')? + 1;
    let mut out = String::new();
    let mut chars = args[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_descriptors_results_and_errors() {
        let text = r#"4242  access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)
4242  openat(AT_FDCWD, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
4242  read(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "\177ELF\2\1\1\3\0\0\0\0\0\0\0\0\3\0>\0\1\0\0\0P\237\2\0\0\0\0\0"..., 832) = 832
4242  mmap(NULL, 1974096, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3</usr/lib/x86_64-linux-gnu/libc.so.6>, 0) = 0x7f1c2a5e6000
4243  read(0</dev/null>,  <unfinished ...>
4242  close(3</usr/lib/x86_64-linux-gnu/libc.so.6>) = 0
4243  <... read resumed>"", 10) = 0
"#;
        let calls = parse_text(text);
        assert_eq!(calls.len(), 6);
        assert_eq!(calls[0].name, "access");
        assert_eq!(calls[0].path.as_deref(), Some("/etc/ld.so.preload"));
        assert_eq!(calls[0].errno.as_deref(), Some("ENOENT"));
        assert_eq!(calls[1].result, Some(3));
        assert_eq!(
            calls[2].fd_path.as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
        );
        assert_eq!(
            calls[3].fd_path.as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
        );
        assert_eq!(calls[3].result, Some(0x7f1c2a5e6000));
        assert_eq!(calls[5].name, "read");
        assert_eq!(calls[5].pid, 4243);
        assert_eq!(calls[5].fd_path.as_deref(), Some("/dev/null"));
        assert_eq!(calls[5].result, Some(0));
    }

    #[test]
    fn traces_a_real_program() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t");
        let out = run_traced(&Command::new("/bin/true"), &log);
        assert!(out.status.success());
        let calls = parse(&log);
        assert!(calls
            .iter()
            .any(|c| c.name == "openat"
                && c.path.as_deref().is_some_and(|p| p.contains("libc.so.6"))));
        assert!(calls.iter().any(|c| c.name == "mmap"
            && c.fd_path
                .as_deref()
                .is_some_and(|p| p.contains("libc.so.6"))));
    }
}
