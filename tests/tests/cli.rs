//! The command lines' refusals: one line saying what and why, exit status 2,
//! and nothing written.

use std::process::Command;

use dlfm_tests::artifacts;
use dlfm_tests::scenario::assert_ok;

fn refused(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{cmd:?} should exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{cmd:?}: `{needle}` not in: {err}");
}

#[test]
fn dlpatch_refuses_with_one_line() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ld.so");
    let dlpatch = || {
        let mut c = Command::new(&art.dlpatch);
        c.arg("-o").arg(&out);
        c
    };
    refused(
        dlpatch().arg("/bin/true"),
        "not linked with the dlfm wrapper",
    );
    refused(
        dlpatch().arg(dir.path().join("nope")),
        "cannot read the program",
    );
    let prog = dir.path().join("prog");
    let src = dir.path().join("p.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&prog)
        .arg(&src)
        .arg(&art.wrapper)
        .output()
        .unwrap();
    assert!(cc.status.success());
    refused(
        dlpatch().arg(&prog).args(["--ldso", "/bin/true"]),
        "ld.so build not supported",
    );
    refused(
        dlpatch().arg(&prog).args(["--ldso", "/etc/hostname"]),
        "not an ELF file",
    );
    assert!(!out.exists(), "nothing may be written on a refusal");
    // The same program is accepted, and --dry-run writes nothing either.
    let dry = dlpatch().arg(&prog).arg("--dry-run").output().unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(String::from_utf8_lossy(&dry.stdout).contains("openat"));
    assert!(!out.exists());
}

#[test]
fn dlfm_pre_refuses_with_one_line() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let pre = || {
        let mut c = Command::new(&art.dlfm_pre);
        c.current_dir(dir.path())
            .env_remove("DLFM_CACHE")
            .env_remove("DLCACHE_DBG");
        c
    };
    refused(pre().args(["read-cache", "24"]), "cannot read the journal");
    std::fs::write(dir.path().join("dlcache.dat.journal"), b"").unwrap();
    refused(pre().args(["read-cache", "24"]), "holds no recording");
    std::fs::write(dir.path().join("dlcache.dat.journal"), vec![7u8; 1000]).unwrap();
    refused(pre().args(["read-cache", "24"]), "holds no recording");
    // A pilot whose ld.so probed and stat'ed but opened no file (a loader
    // whose opens dlpatch did not patch): refused, nothing packed.
    std::fs::write(
        dir.path().join("dlcache.dat.journal"),
        journal_without_opens(),
    )
    .unwrap();
    refused(
        pre().args(["read-cache", "24"]),
        "the pilot's ld.so opened no file through the wrapper (1 process(es) recorded",
    );
    let bad_width = pre().args(["read-cache", "0"]).output().unwrap();
    assert_eq!(bad_width.status.code(), Some(2));
    assert!(!dir.path().join("dlcache.dat").exists());
}

/// A journal of one process whose ld.so stat'ed, probed and checked
/// access, but opened no file.
fn journal_without_opens() -> Vec<u8> {
    use dlfm_cache::journal::{encode, Origin, Record, MAX_RECORD};
    let st = dlfm_cache::stat::to_bytes(&dlfm_cache::stat::blank());
    let records = [
        Record::Process {
            pid: 42,
            program_id: b"prog",
            ldso_id: b"ld",
            exe: b"./app",
        },
        Record::Open {
            flags: 0o2000000,
            result: -2,
            stat: None,
            path: b"/nope/libc.so.6",
        },
        Record::Stat {
            flags: 0,
            result: 0,
            stat: &st,
            path: b"/lib",
        },
        Record::Access {
            mode: 4,
            result: -2,
            path: b"/etc/ld.so.preload",
        },
    ];
    let mut out = Vec::new();
    for r in &records {
        let mut buf = vec![0u8; MAX_RECORD];
        let n = encode(r, Origin::Ldso, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Everything in `dir` whose name ends with `suffix`.
fn left_over(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

#[test]
fn dlpatch_embed_refusals_write_nothing_and_say_why() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a_dir = d.join("a-dir");
    std::fs::create_dir(&a_dir).unwrap();
    let embed = || {
        let mut c = Command::new(&art.dlpatch);
        c.current_dir(d).arg("--embed");
        c
    };
    refused(embed().arg("-o").arg(&a_dir), "it is a directory");
    let copy = d.join("python3.dlfm");
    refused(
        embed()
            .args(["--program", "/usr/bin/python3", "-o"])
            .arg(&copy)
            .arg("--loader")
            .arg(&a_dir),
        "it is a directory",
    );
    assert!(!copy.exists(), "no program copy may be written");
    refused(
        embed()
            .args(["--program", "/sbin/ldconfig", "-o"])
            .arg(&copy),
        "it is statically linked",
    );
    refused(
        embed()
            .args(["--ldso", "/sbin/ldconfig", "-o"])
            .arg(d.join("x.so")),
        "not a glibc dynamic loader",
    );
    refused(
        embed()
            .args(["--wrapper", "/etc/hostname", "-o"])
            .arg(d.join("x.so")),
        "not a static library",
    );
    // -o naming the loader's default path: both copies would be one file.
    refused(
        embed()
            .args(["--program", "/usr/bin/python3", "-o"])
            .arg(d.join("ld.so")),
        "would both be",
    );
    assert_eq!(left_over(d, "dlpatch-tmp"), Vec::<String>::new());
    assert_eq!(left_over(d, ".so"), Vec::<String>::new());
    assert_eq!(left_over(&a_dir, ""), Vec::<String>::new());
}

/// A program whose RUNPATH names `$ORIGIN` cannot be copied elsewhere (ld.so
/// would look beside the copy); beside the original it can, and the copy
/// then runs from any working directory.
#[test]
fn a_program_copy_keeps_its_origin_or_is_refused() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = d.join("app");
    std::fs::create_dir_all(app.join("lib")).unwrap();
    std::fs::write(d.join("o.c"), "int origin_value(void) { return 42; }\n").unwrap();
    std::fs::write(
        d.join("main.c"),
        "#include <stdio.h>\nint origin_value(void);\nint main(void) { printf(\"%d\\n\", origin_value()); return 0; }\n",
    )
    .unwrap();
    let cc = |args: &[&str]| {
        let out = Command::new("cc")
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert_ok(&out, "cc");
    };
    cc(&["-shared", "-fPIC", "-o", "app/lib/liborigin.so", "o.c"]);
    cc(&[
        "-o",
        "app/prog",
        "main.c",
        "-Lapp/lib",
        "-lorigin",
        "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
    ]);
    let prog = app.join("prog");
    let copy_to = |out: &std::path::Path| {
        let mut c = Command::new(&art.dlpatch);
        c.current_dir(d)
            .args(["--embed", "--program"])
            .arg(&prog)
            .arg("-o")
            .arg(out)
            .arg("--loader")
            .arg(d.join("ld.so"));
        c
    };
    let elsewhere = d.join("prog.dlfm");
    refused(&mut copy_to(&elsewhere), "finds libraries through $ORIGIN");
    assert!(!elsewhere.exists());
    let beside = app.join("prog.dlfm");
    assert_ok(&copy_to(&beside).output().unwrap(), "dlpatch, copy beside");
    let run = Command::new(&beside).current_dir("/").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "42\n");
}

/// `dlpatch --embed --program` on a program whose PT_INTERP its header says
/// lies at 1 MiB (or whose end overflows), in a real program's bytes: one
/// line naming the range, exit 2, nothing written (it panicked before).
#[test]
fn dlpatch_refuses_a_program_whose_interpreter_lies_outside_it() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read("/bin/true").unwrap();
    let phoff = u64::from_le_bytes(original[32..40].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(original[56..58].try_into().unwrap()) as usize;
    let interp = (0..phnum)
        .map(|i| phoff + i * 56)
        .find(|&at| u32::from_le_bytes(original[at..at + 4].try_into().unwrap()) == 3)
        .expect("/bin/true has a PT_INTERP");
    for (offset, size) in [(1u64 << 20, 28u64), (u64::MAX - 1, 28)] {
        let mut bytes = original.clone();
        bytes[interp + 8..interp + 16].copy_from_slice(&offset.to_le_bytes());
        bytes[interp + 32..interp + 40].copy_from_slice(&size.to_le_bytes());
        let crafted = dir.path().join("crafted");
        std::fs::write(&crafted, &bytes).unwrap();
        let copy = dir.path().join("crafted.dlfm");
        refused(
            Command::new(&art.dlpatch)
                .args(["--embed", "--program"])
                .arg(&crafted)
                .arg("-o")
                .arg(&copy)
                .arg("--loader")
                .arg(dir.path().join("ld.so")),
            "interpreter (PT_INTERP)",
        );
        assert!(!copy.exists() && !dir.path().join("ld.so").exists());
    }
}
