//! The table of ld.so's file-call sites: what to look for and what to patch.
//! This is data about one family of ld.so builds (glibc 2.36, x86_64, as
//! Debian 12 ships it); `finder` checks it against the real file, and a test
//! checks every pattern matches the machine's ld.so exactly once.

use std::ops::Range;

/// One file-call site.
#[derive(Debug)]
pub struct SiteSpec {
    /// The system call's name.
    pub name: &'static str,
    /// The system call number.
    pub nr: u32,
    /// Bytes that occur exactly once in ld.so's code, around the site.
    pub pattern: &'static [u8],
    /// The bytes replaced by `jmp rel32` (a range of `pattern`, ≥ 5 bytes,
    /// holding the `syscall`); the trampoline re-executes the rest of it.
    pub window: Range<usize>,
}

impl SiteSpec {
    /// Offset of the `syscall` instruction within the window.
    pub fn syscall_at(&self) -> Option<usize> {
        let w = self.pattern.get(self.window.clone())?;
        w.windows(2).position(|p| p == [0x0f, 0x05])
    }
}

/// Every site dlpatch patches, in the order of docs/internals.md §1.
pub const SITES: &[SiteSpec] = &[
    // __open64_nocancel: eax = 257 is set 13 bytes before; the window is
    // `mov $-100,%edi; syscall`.
    SiteSpec {
        name: "openat",
        nr: 257,
        pattern: &[
            0xb8, 0x01, 0x01, 0x00, 0x00, 0x48, 0x89, 0xfe, 0xbf, 0x9c, 0xff, 0xff, 0xff, 0x0f,
            0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,
        ],
        window: 8..15,
    },
    // __read_nocancel: `xor %eax,%eax; syscall` is only 4 bytes, so the
    // window takes the following `cmp $-4096,%rax` too (flags survive jmp).
    SiteSpec {
        name: "read",
        nr: 0,
        pattern: &[0x31, 0xc0, 0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff],
        window: 0..10,
    },
    SiteSpec {
        name: "pread64",
        nr: 17,
        pattern: &[0x49, 0x89, 0xca, 0xb8, 0x11, 0x00, 0x00, 0x00, 0x0f, 0x05],
        window: 3..10,
    },
    // __fstatat64: both stat and fstat come through here.
    SiteSpec {
        name: "newfstatat",
        nr: 262,
        pattern: &[
            0x41, 0x89, 0xca, 0xb8, 0x06, 0x01, 0x00, 0x00, 0x0f, 0x05, 0x3d, 0x00, 0xf0, 0xff,
            0xff,
        ],
        window: 3..10,
    },
    SiteSpec {
        name: "mmap",
        nr: 9,
        pattern: &[0x75, 0x14, 0xb8, 0x09, 0x00, 0x00, 0x00, 0x0f, 0x05],
        window: 2..9,
    },
    SiteSpec {
        name: "close",
        nr: 3,
        pattern: &[
            0xb8, 0x03, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,
        ],
        window: 0..7,
    },
    // __access (/etc/ld.so.preload); another inline access elsewhere is
    // followed by a 32-bit cmp and does not match.
    SiteSpec {
        name: "access",
        nr: 21,
        pattern: &[
            0xb8, 0x15, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,
        ],
        window: 0..7,
    },
    SiteSpec {
        name: "lseek",
        nr: 8,
        pattern: &[
            0xb8, 0x08, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,
        ],
        window: 0..7,
    },
];
