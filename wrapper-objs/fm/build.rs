//! libdl.so.2 becomes a needed library of libdlfm_fm.so even though nothing
//! links to it here: before glibc 2.34 it defines the `dlsym@GLIBC_2.2.5`
//! that `src/real.rs` binds (since 2.34 libc.so.6 does, and libdl.so.2 is a
//! stub every glibc still ships).

fn main() {
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--push-state,--no-as-needed,-l:libdl.so.2,--pop-state"
    );
}
