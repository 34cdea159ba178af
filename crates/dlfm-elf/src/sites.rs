//! The system calls dlpatch sends to the wrapper (docs/internals.md §1): their
//! x86_64 numbers and which of them a loader must have for dlfm to work. Where
//! they are in a given ld.so is `finder`'s business, read from its code.

/// One system call that dlpatch routes to the wrapper.
#[derive(Debug, PartialEq, Eq)]
pub struct Call {
    /// The system call's name.
    pub name: &'static str,
    /// Its number on x86_64.
    pub nr: u32,
}

/// Every call dlpatch patches, wherever ld.so makes it. `stat`, `fstat` and
/// `lstat` are how glibc before 2.33 asks for file status; the wrapper turns
/// them into the `newfstatat` calls later builds make.
pub const CALLS: &[Call] = &[
    Call {
        name: "openat",
        nr: 257,
    },
    Call {
        name: "read",
        nr: 0,
    },
    Call {
        name: "pread64",
        nr: 17,
    },
    Call {
        name: "newfstatat",
        nr: 262,
    },
    Call {
        name: "mmap",
        nr: 9,
    },
    Call {
        name: "close",
        nr: 3,
    },
    Call {
        name: "access",
        nr: 21,
    },
    Call {
        name: "lseek",
        nr: 8,
    },
    Call {
        name: "stat",
        nr: 4,
    },
    Call {
        name: "fstat",
        nr: 5,
    },
    Call {
        name: "lstat",
        nr: 6,
    },
];

/// Calls a loader must make somewhere for replay to work: one name of each
/// group. A loader where none is found is not read right, and is refused.
pub const NEEDED: &[&[&str]] = &[
    &["openat"],
    &["read"],
    &["mmap"],
    &["close"],
    &["newfstatat", "fstat"],
];

/// The call with number `nr`, if dlpatch patches it.
pub fn call(nr: u32) -> Option<&'static Call> {
    CALLS.iter().find(|c| c.nr == nr)
}
