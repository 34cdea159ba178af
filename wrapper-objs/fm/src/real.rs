//! The next definitions of the functions this library defines (libc's),
//! looked up once with `dlsym(RTLD_NEXT, name)` and kept in atomics, each
//! typed with its C function type when it is declared ([`Next::new`], the
//! one place that promises the type), so that calling it is one safe helper
//! ([`Next::call`]): a missing definition makes the call fail with ENOSYS
//! as the program would see it.
//!
//! `dlsym` is bound by its first version (GLIBC_2.2.5 on x86_64, GLIBC_2.17
//! on aarch64): libdl.so.2 defines it before glibc 2.34 and libc.so.6 keeps
//! it since, so the library loads with every glibc (the default `dlsym@GLIBC_2.34` exists only from 2.34 on, and
//! a preloaded library that needs a missing version stops the program).
//! libdl.so.2 (a stub since 2.34) is a needed library for the same reason
//! (`build.rs`).

use core::ffi::{c_char, c_int, c_long, c_void, CStr};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::calls::fail;

extern "C" {
    #[cfg_attr(target_arch = "x86_64", link_name = "dlsym@GLIBC_2.2.5")]
    #[cfg_attr(target_arch = "aarch64", link_name = "dlsym@GLIBC_2.17")]
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// One function's next definition, of C type `F`, resolved on first use.
pub struct Next<F> {
    name: &'static CStr,
    ptr: AtomicPtr<c_void>,
    ty: PhantomData<F>,
}

impl<F: Copy> Next<F> {
    /// The next definition of `name`, not looked up yet.
    ///
    /// # Safety
    /// `F` must be the C type of libc's function `name` (an `extern "C"`
    /// function pointer of the same arguments and result).
    pub const unsafe fn new(name: &'static CStr) -> Next<F> {
        Next {
            name,
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            ty: PhantomData,
        }
    }

    /// The definition, if libc has one.
    pub fn get(&self) -> Option<F> {
        let mut p = self.ptr.load(Ordering::Acquire);
        if p.is_null() {
            // SAFETY: `name` is NUL-terminated; dlsym is safe to call once
            // libc is up, and any thread may race here: both store the same
            // value.
            p = unsafe { dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
            self.ptr.store(p, Ordering::Release);
        }
        // SAFETY: a non-null dlsym result is the function `name`, of type F
        // (`new`'s promise); fn pointers and data pointers have one size
        // here.
        (!p.is_null()).then(|| unsafe { core::mem::transmute_copy(&p) })
    }

    /// `f(the definition)`, or the failure the C function returns with
    /// errno ENOSYS when libc has none.
    pub fn call<R: Failure>(&self, f: impl FnOnce(F) -> R) -> R {
        match self.get() {
            Some(real) => f(real),
            None => R::enosys(),
        }
    }
}

/// What a C function returns when it fails (errno set to ENOSYS here).
pub trait Failure {
    /// The failed result, with errno ENOSYS.
    fn enosys() -> Self;
}

impl Failure for c_int {
    fn enosys() -> c_int {
        fail(libc::ENOSYS)
    }
}

impl Failure for c_long {
    fn enosys() -> c_long {
        c_long::from(fail(libc::ENOSYS))
    }
}

impl Failure for isize {
    fn enosys() -> isize {
        fail(libc::ENOSYS) as isize
    }
}

impl<T> Failure for *mut T {
    fn enosys() -> *mut T {
        fail(libc::ENOSYS);
        core::ptr::null_mut()
    }
}

impl Failure for () {
    fn enosys() {
        fail(libc::ENOSYS);
    }
}
