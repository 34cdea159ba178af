//! Each trampoline preserves what the kernel preserves: under gdb, at every
//! patched site of the ld.so copy, all registers but rax, rcx and r11 (xmm
//! and flags included) are the same after the window as before it, even with
//! a stand-in wrapper that clobbers everything the ABI lets it clobber. On
//! aarch64 (under qemu-aarch64-static's gdb stub, with gdb-multiarch): all
//! but x0, with v0-v31, NZCV and FPSR.

use std::path::Path;
use std::process::{Command, Stdio};

use dlfm_tests::{aarch64, artifacts};

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test fixtures' directory.
fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Builds, in `d`, `libtwice.so` and `prog` (which dlopens it and prints
/// 42) with `cc`, linked with the fixture `clobberer` (a stand-in wrapper),
/// RUNPATH `d` and `more_runpath`, loader `ldso`.
fn build(d: &Path, cc: &str, clobberer: &str, more_runpath: &str, ldso: &Path) {
    std::fs::write(d.join("lib.c"), "int twice(int v) { return 2 * v; }\n").unwrap();
    std::fs::write(
        d.join("prog.c"),
        "#include <dlfcn.h>\n#include <stdio.h>\nint main(void) {\n\
         void *h = dlopen(\"libtwice.so\", RTLD_NOW); if (!h) return 1;\n\
         int (*f)(int) = (int (*)(int))dlsym(h, \"twice\"); printf(\"%d\\n\", f(21)); return 0; }\n",
    )
    .unwrap();
    ok(Command::new(cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(d.join("libtwice.so"))
        .arg(d.join("lib.c")));
    ok(Command::new(cc)
        .arg("-o")
        .arg(d.join("prog"))
        .arg(d.join("prog.c"))
        .arg(fixtures().join(clobberer))
        .arg(format!(
            "-Wl,--enable-new-dtags,-rpath,{}{more_runpath}",
            d.display()
        ))
        .arg(format!("-Wl,--dynamic-linker={}", ldso.display())));
}

/// The registers (gdb's names) that a window's own instructions, other than
/// the `syscall`, write: the trampoline runs them too, so they may change.
fn window_writes(window: &[u8], vaddr: u64) -> Vec<String> {
    use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, Mnemonic, OpAccess};
    let mut info = InstructionInfoFactory::new();
    let mut out = Vec::new();
    for insn in Decoder::with_ip(64, window, vaddr, DecoderOptions::NONE) {
        if insn.mnemonic() == Mnemonic::Syscall {
            continue;
        }
        if insn.rflags_modified() != 0 {
            out.push("eflags".to_string());
        }
        for u in info.info(&insn).used_registers() {
            if u.access() != OpAccess::Read && u.access() != OpAccess::CondRead {
                out.push(format!("{:?}", u.register().full_register()).to_lowercase());
            }
        }
    }
    out
}

#[test]
fn trampolines_preserve_what_the_kernel_preserves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ldso = d.join("ld.so");
    build(d, "cc", "clobbering_wrapper.S", "", &ldso);
    ok(Command::new(&artifacts().dlpatch)
        .arg(d.join("prog"))
        .arg("-o")
        .arg(&ldso));
    assert_eq!(
        ok(&mut Command::new(d.join("prog"))),
        "42\n",
        "the program runs through the trampolines"
    );

    let system = std::fs::read("/lib64/ld-linux-x86-64.so.2").unwrap();
    let patched = dlfm_elf::patch_ldso(&system).unwrap();
    let sites: Vec<String> = patched
        .sites
        .iter()
        .map(|s| {
            let at = s.window_offset as usize;
            let window = &system[at..at + s.window_len as usize];
            format!(
                "{}:{:x}:{}:{}",
                s.name,
                s.window_vaddr,
                s.window_len,
                window_writes(window, s.window_vaddr).join("+")
            )
        })
        .collect();
    // lseek is patched but this ld.so never calls it while loading.
    check_gdb(
        Command::new("gdb")
            .args(["-nx", "-batch", "-x"])
            .arg(fixtures().join("registers.py"))
            .arg("--args")
            .arg(d.join("prog"))
            .env("SITES", sites.join(",")),
        &[
            "openat",
            "read",
            "pread64",
            "newfstatat",
            "mmap",
            "close",
            "access",
        ],
    );
}

/// Runs the gdb script (`gdb`, its arguments and environment set) and
/// checks its report: no register changed across a trampoline, and every
/// site named in `exercised` was checked at least once.
fn check_gdb(gdb: &mut Command, exercised: &[&str]) {
    let out = gdb
        .output()
        .expect("run gdb (apt-get install gdb gdb-multiarch)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let results: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .collect();
    let bad: Vec<&&str> = results
        .iter()
        .filter(|l| l.starts_with("mismatch") || l.starts_with("error"))
        .collect();
    assert!(
        bad.is_empty(),
        "registers changed across trampolines:\n{text}"
    );
    for name in exercised {
        assert!(
            results
                .iter()
                .any(|l| l.starts_with(&format!("checked {name} "))),
            "the {name} site was not exercised:\n{text}"
        );
    }
}

#[test]
fn aarch64_trampolines_preserve_what_the_kernel_preserves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let system = Path::new(aarch64::SYSROOT).join("lib/ld-linux-aarch64.so.1");
    let ldso = d.join("ld.so");
    let libc_dir = format!(":{}/lib", aarch64::SYSROOT);
    build(
        d,
        aarch64::CC,
        "clobbering_wrapper_aarch64.S",
        &libc_dir,
        &ldso,
    );
    ok(Command::new(&artifacts().dlpatch)
        .arg(d.join("prog"))
        .arg("--ldso")
        .arg(&system)
        .arg("-o")
        .arg(&ldso));
    assert_eq!(
        ok(Command::new("qemu-aarch64-static").arg(d.join("prog"))),
        "42\n",
        "the program runs through the trampolines"
    );

    let patched = dlfm_elf::patch_ldso(&std::fs::read(&system).unwrap()).unwrap();
    let sites: Vec<String> = patched
        .sites
        .iter()
        .map(|s| format!("{}:{:x}:{}:", s.name, s.window_vaddr, s.window_len))
        .collect();
    // A free port for qemu's gdb stub.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _qemu = KillOnDrop(
        Command::new("qemu-aarch64-static")
            .args(["-g", &port.to_string()])
            .arg(d.join("prog"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-aarch64-static"),
    );
    // The script retries the connection until qemu listens.
    check_gdb(
        Command::new("timeout")
            .args(["120", "gdb-multiarch", "-nx", "-batch"])
            .arg("-ex")
            .arg(format!("file {}", d.join("prog").display()))
            .arg("-x")
            .arg(fixtures().join("registers.py"))
            .env("SITES", sites.join(","))
            .env("ARCH", "aarch64")
            .env("REMOTE", port.to_string()),
        &["faccessat", "openat", "read", "newfstatat", "mmap", "close"],
    );
}

/// A child process killed when the test ends, failed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
