//! The system calls dlpatch sends to the wrapper (docs/internals.md §1): their
//! numbers on each architecture and which of them a loader must have for dlfm
//! to work. Where they are in a given ld.so is `finder`'s business, read from
//! its code.

/// The architectures whose loaders dlpatch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 (`syscall`, number in eax).
    X86_64,
    /// aarch64 (`svc #0`, number in x8).
    Aarch64,
}

impl Arch {
    /// The name users know it by.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The machine this code was built for, if dlpatch reads its loaders.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }
}

/// One system call that dlpatch routes to the wrapper.
#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    /// The system call's name.
    pub name: &'static str,
    /// Its number on x86_64, if it exists there.
    pub x86_64: Option<u32>,
    /// Its number on aarch64, if it exists there.
    pub aarch64: Option<u32>,
}

impl Call {
    /// Its number on `arch`, if it exists there.
    pub fn nr(&self, arch: Arch) -> Option<u32> {
        match arch {
            Arch::X86_64 => self.x86_64,
            Arch::Aarch64 => self.aarch64,
        }
    }
}

const fn both(name: &'static str, x86_64: u32, aarch64: u32) -> Call {
    Call {
        name,
        x86_64: Some(x86_64),
        aarch64: Some(aarch64),
    }
}

const fn x86_64_only(name: &'static str, x86_64: u32) -> Call {
    Call {
        name,
        x86_64: Some(x86_64),
        aarch64: None,
    }
}

/// Every call dlpatch patches, wherever ld.so makes it. On x86_64, `stat`,
/// `fstat` and `lstat` are how glibc before 2.33 asks for file status, and
/// `open` how glibc before 2.26 opens libraries (the wrapper turns them into
/// `newfstatat` and `openat`); `access` is its own call. aarch64 has only
/// `openat`, `newfstatat`, `fstat` and `faccessat`.
pub const CALLS: &[Call] = &[
    both("openat", 257, 56),
    x86_64_only("open", 2),
    both("read", 0, 63),
    both("pread64", 17, 67),
    both("newfstatat", 262, 79),
    both("mmap", 9, 222),
    both("close", 3, 57),
    x86_64_only("access", 21),
    Call {
        name: "faccessat",
        x86_64: None,
        aarch64: Some(48),
    },
    both("lseek", 8, 62),
    x86_64_only("stat", 4),
    both("fstat", 5, 80),
    x86_64_only("lstat", 6),
];

/// Calls a loader must make somewhere for replay to work: one name of each
/// group. A loader where none is found is not read right, and is refused.
pub const NEEDED: &[&[&str]] = &[
    &["openat", "open"],
    &["read"],
    &["mmap"],
    &["close"],
    &["newfstatat", "fstat"],
];

/// The call with number `nr` on `arch`, if dlpatch patches it.
pub fn call(arch: Arch, nr: u32) -> Option<&'static Call> {
    CALLS.iter().find(|c| c.nr(arch) == Some(nr))
}
