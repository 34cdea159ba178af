//! The entry ABI between the code dlpatch adds to the ld.so copy and the
//! wrapper linked into the program (docs/internals.md §1 and §2): the note
//! through which the resolver finds `dlfm_entry`. The wrapper emits the note
//! (`wrapper-objs/ldso/src/lib.rs`, with [`entry_abi_token!`]); `dlfm-elf`'s
//! resolver searches for it and `dlpatch` checks a program carries it.

/// The 16 ASCII bytes that precede the entry's offset in the wrapper's note,
/// as a string literal (for `global_asm!`'s `concat!`). A new version of the
/// entry's calling convention changes the digit: an old program then looks
/// like one without the wrapper, and every call goes to the kernel.
#[macro_export]
macro_rules! entry_abi_token {
    () => {
        "dlfm-entry-abi-1"
    };
}

/// The note's owner (`n_name`, without its NUL), as a string literal.
#[macro_export]
macro_rules! entry_abi_owner {
    () => {
        "DLFM"
    };
}

/// [`entry_abi_token!`] as bytes.
pub const TOKEN: &[u8; 16] = match entry_abi_token!().as_bytes().first_chunk::<16>() {
    Some(t) => t,
    None => panic!("the token is 16 bytes"),
};

/// The note's owner (`n_name`, without its NUL).
pub const NOTE_OWNER: &str = entry_abi_owner!();
/// The note's type (`n_type`).
pub const NOTE_TYPE: u32 = 1;
