//! The next definitions of the functions this library defines (libc's),
//! looked up once with `dlsym(RTLD_NEXT, name)` and kept in atomics.
//!
//! `dlsym` is bound by its first version, GLIBC_2.2.5: libdl.so.2 defines it
//! before glibc 2.34 and libc.so.6 keeps it since, so the library loads with
//! every glibc (the default `dlsym@GLIBC_2.34` exists only from 2.34 on, and
//! a preloaded library that needs a missing version stops the program).
//! libdl.so.2 (a stub since 2.34) is a needed library for the same reason
//! (`build.rs`).

use core::ffi::{c_char, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

extern "C" {
    #[link_name = "dlsym@GLIBC_2.2.5"]
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// One function's next definition, resolved on first use.
pub struct Next {
    name: &'static CStr,
    ptr: AtomicPtr<c_void>,
}

impl Next {
    /// The next definition of `name`, not looked up yet.
    pub const fn new(name: &'static CStr) -> Next {
        Next {
            name,
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Its address (null if libc has none, which the callers turn into
    /// ENOSYS).
    pub fn get(&self) -> *mut c_void {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            return p;
        }
        // SAFETY: `name` is NUL-terminated; dlsym is safe to call once libc
        // is up, and any thread may race here: both store the same value.
        let p = unsafe { dlsym(libc::RTLD_NEXT, self.name.as_ptr() as *const c_char) };
        self.ptr.store(p, Ordering::Release);
        p
    }
}
