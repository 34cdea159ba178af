//! The process's initial stack (argc, argv, envp, auxv), read through ld.so's
//! `__libc_stack_end`: the only way to see the environment before libc exists.

use linux_raw_sys::auxvec::{AT_NULL, AT_SECURE};

/// Environment strings longer than this are treated as absent.
const MAX_ENV_LEN: usize = 4096;

/// Where the environment and the aux vector start on the initial stack.
#[derive(Clone, Copy)]
pub struct InitialStack {
    envp: *const *const u8,
    auxv: *const u64,
}

impl InitialStack {
    /// Reads the layout from `stack_end`, which points at argc.
    ///
    /// # Safety
    /// `stack_end` must be ld.so's `__libc_stack_end` (or null): argc,
    /// argv[argc], NULL, envp..., NULL, auxv pairs ending in AT_NULL.
    pub unsafe fn read(stack_end: *const u64) -> Option<InitialStack> {
        if stack_end.is_null() {
            return None;
        }
        // SAFETY: the kernel's initial stack layout, vouched for by the caller.
        unsafe {
            let argc = *stack_end as usize;
            let envp = stack_end.add(1 + argc + 1) as *const *const u8;
            let mut p = envp;
            while !(*p).is_null() {
                p = p.add(1);
            }
            // In a secure process ld.so removes unsafe variables by shifting
            // the rest of envp down, which leaves one extra NULL per removed
            // variable before the aux vector. The aux vector never starts
            // with AT_NULL (the kernel always supplies entries), so skip them.
            while (*p).is_null() {
                p = p.add(1);
            }
            Some(InitialStack {
                envp,
                auxv: p as *const u64,
            })
        }
    }

    /// The value of environment variable `name` (given without `=`).
    pub fn getenv(&self, name: &[u8]) -> Option<&'static [u8]> {
        self.env_slot(name).map(|(_, value)| value)
    }

    /// The environment's slot for variable `name` (the pointer to its
    /// `NAME=value` string, which the caller may replace) and its value.
    pub fn env_slot(&self, name: &[u8]) -> Option<(*mut *const u8, &'static [u8])> {
        let mut p = self.envp;
        loop {
            // SAFETY: `envp` is a NULL-terminated array of NUL-terminated
            // strings (see `read`); each string is scanned only up to its NUL.
            let s = unsafe { *p };
            if s.is_null() {
                return None;
            }
            // SAFETY: as above.
            let len = unsafe { dlfm_bytes::c_strlen(s, MAX_ENV_LEN) };
            if let Some(len) = len {
                // SAFETY: `len` bytes before the NUL are readable and live
                // as long as the process.
                let var: &'static [u8] = unsafe { core::slice::from_raw_parts(s, len) };
                if let (Some(key), Some(b'=')) = (var.get(..name.len()), var.get(name.len())) {
                    if dlfm_bytes::equal(key, name) {
                        return var.get(name.len() + 1..).map(|v| (p as *mut _, v));
                    }
                }
            }
            // SAFETY: not yet at the terminating NULL.
            p = unsafe { p.add(1) };
        }
    }

    /// The value of aux-vector entry `kind` (`linux_raw_sys::auxvec::AT_*`),
    /// if present.
    pub fn aux(&self, kind: u32) -> Option<u64> {
        let mut p = self.auxv;
        loop {
            // SAFETY: the aux vector is a list of (type, value) pairs ending
            // with AT_NULL (0).
            let (t, v) = unsafe { (*p, *p.add(1)) };
            if t == u64::from(AT_NULL) {
                return None;
            }
            if t == u64::from(kind) {
                return Some(v);
            }
            // SAFETY: not yet at AT_NULL.
            p = unsafe { p.add(2) };
        }
    }

    /// Whether the kernel started this process in secure mode (AT_SECURE:
    /// setuid, setgid or file capabilities). Such a process must ignore
    /// DLFM_* and DLCACHE_DBG exactly as ld.so ignores LD_LIBRARY_PATH: the
    /// user who sets them is not the one whose privileges the process has.
    /// An aux vector without the entry counts as secure: never trust what
    /// cannot be checked.
    pub fn secure(&self) -> bool {
        self.aux(AT_SECURE) != Some(0)
    }
}
