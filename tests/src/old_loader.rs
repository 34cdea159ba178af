//! A loader that opens libraries with `open`, as glibc before 2.26 does
//! (RHEL 7's 2.17; Debian's archive has no such loader): bookworm's x86_64
//! loader (glibc 2.36) with `__open64_nocancel`, what `open_verify` opens
//! every library and `ld.so.cache` with, rewritten in place from
//! `openat(AT_FDCWD, path, flags)` to `open(path, flags)`. Its other
//! `openat`s (opendir's and `__openat64_nocancel`) stay, so that "an
//! `openat` exists somewhere" is true of it, as of 2.17.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::debian::Glibc;

/// bookworm's `__open64_nocancel` call: `mov %esi,%edx; mov $257,%eax;
/// mov %rdi,%rsi; mov $-100,%edi; syscall`.
const OPENAT_CALL: [u8; 17] = [
    0x89, 0xf2, 0xb8, 0x01, 0x01, 0x00, 0x00, 0x48, 0x89, 0xfe, 0xbf, 0x9c, 0xff, 0xff, 0xff, 0x0f,
    0x05,
];

/// The same bytes calling `open(path, flags)` (the mode register holds the
/// flags, read only with O_CREAT): `mov %esi,%edx; mov $2,%eax;
/// nopl 0(%rax,%rax,1); syscall`.
const OPEN_CALL: [u8; 17] = [
    0x89, 0xf2, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f,
    0x05,
];

/// Offset of the system call instruction in [`OPEN_CALL`].
pub const SYSCALL_AT: usize = 15;

/// `ld.so` with its library opens made `open` calls, and the file offset
/// of that call's `syscall`; None if `ld.so` lacks bookworm's call.
pub fn opening_with_open(ldso: &[u8]) -> Option<(Vec<u8>, usize)> {
    let at = ldso
        .windows(OPENAT_CALL.len())
        .position(|w| w == OPENAT_CALL)?;
    let mut bytes = ldso.to_vec();
    bytes[at..at + OPEN_CALL.len()].copy_from_slice(&OPEN_CALL);
    Some((bytes, at + SYSCALL_AT))
}

/// A copy of `g` (bookworm's amd64 glibc) under `dir` whose loader opens
/// libraries with `open`.
pub fn glibc_opening_with_open(g: &Glibc, dir: &Path) -> Glibc {
    let root = dir.join("glibc");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&g.root)
        .arg(&root)
        .output()
        .expect("run cp");
    assert!(out.status.success(), "cp -a {}", g.root.display());
    let old = Glibc { root, ..g.clone() };
    let ldso = old.ldso();
    let bytes = fs::read(&ldso).expect("read the loader");
    let (rewritten, _) = opening_with_open(&bytes).unwrap_or_else(|| {
        panic!(
            "{} has no `__open64_nocancel` of glibc 2.36's form to rewrite",
            g.describe()
        )
    });
    fs::write(&ldso, rewritten).expect("write the loader");
    old
}
