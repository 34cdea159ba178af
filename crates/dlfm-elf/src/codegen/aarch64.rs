//! aarch64's trampolines, common stub and resolver.
//!
//! A site's `svc #0` becomes `b trampoline`; x8 still holds the number and
//! x0-x5 the arguments. The trampoline saves x29/x30 (its `bl` writes x30),
//! calls the stub and branches back after the `svc`. The stub preserves what
//! the kernel preserves across `svc`: every register but x0, the vector
//! registers, NZCV and FPSR. There is no red zone on aarch64 Linux, and sp
//! is 16-byte aligned wherever ld.so makes a system call, so both push.

use super::a64::{Asm, AsmError, Cond, Label, SP};
use super::{Code_, Layout, AT_PHDR, AT_PHNUM, ENTRY_MAGIC, NO_WRAPPER, PHENT, PT_NOTE, PT_PHDR};
use crate::finder::FoundSite;

/// The stub's frame: x0-x18 and x30 (160 bytes), NZCV and FPSR (16), q0-q31
/// (512). The first six words are the argument array the wrapper reads.
const FRAME: u32 = 688;
/// Where x8 (the number) is saved in the frame.
const SAVED_X8: u32 = 64;
/// Where NZCV and FPSR are saved.
const SAVED_FLAGS: i32 = 160;
/// Where q0 is saved.
const SAVED_Q: i32 = 176;

/// Generates trampolines, the common stub and (without an embedded
/// wrapper) the resolver.
pub(super) fn generate(sites: &[FoundSite], layout: &Layout) -> Result<Code_, AsmError> {
    let mut a = Asm::new(layout.code_vaddr);
    let common = a.label();
    let resolve = a.label();
    let mut starts = Vec::new();
    for site in sites {
        starts.push(a.here());
        a.stp_pre(29, 30, SP, -16);
        a.bl(common);
        a.ldp_post(29, 30, SP, 16);
        a.b_to(site.window_vaddr + site.window_len())?;
    }
    a.bind(common);
    common_stub(&mut a, layout, resolve)?;
    if layout.embedded_entry.is_none() {
        a.bind(resolve);
        resolver(&mut a, layout)?;
    }
    Ok(Code_ {
        bytes: a.finish()?,
        trampolines: starts,
    })
}

/// x0-x18 and x30 in pairs, with their frame offsets.
const PAIRS: [(u32, u32, i32); 10] = [
    (0, 1, 0),
    (2, 3, 16),
    (4, 5, 32),
    (6, 7, 48),
    (8, 9, 64),
    (10, 11, 80),
    (12, 13, 96),
    (14, 15, 112),
    (16, 17, 128),
    (18, 30, 144),
];

/// The common stub: x8 = number, x0-x5 the arguments; returns the result in
/// x0 with everything else as it was.
fn common_stub(a: &mut Asm, layout: &Layout, resolve: Label) -> Result<(), AsmError> {
    let none = a.label();
    let out = a.label();
    a.sub_imm(SP, SP, FRAME);
    for (r1, r2, off) in PAIRS {
        a.stp(r1, r2, SP, off);
    }
    a.mrs_nzcv(9);
    a.mrs_fpsr(10);
    a.stp(9, 10, SP, SAVED_FLAGS);
    for q in (0..32).step_by(2) {
        a.stp_q(q, q + 1, SP, SAVED_Q + 16 * q as i32);
    }
    match layout.embedded_entry {
        Some(entry) => {
            call_wrapper(a, layout, |a| a.bl_to(entry))?;
            a.b(out);
        }
        None => {
            let have = a.label();
            a.load_at(16, layout.slot_vaddr)?;
            a.cmp_imm(16, NO_WRAPPER as u32);
            a.b_cond(Cond::Hi, have);
            a.b_cond(Cond::Eq, none);
            a.bl(resolve);
            a.cmp_imm(16, NO_WRAPPER as u32);
            a.b_cond(Cond::Eq, none);
            a.bind(have);
            call_wrapper(a, layout, |a| {
                a.blr(16);
                Ok(())
            })?;
            a.b(out);
        }
    }
    // No wrapper: the real system call with the original arguments.
    a.bind(none);
    for (r1, r2, off) in &PAIRS[..3] {
        a.ldp(*r1, *r2, SP, *off);
    }
    a.ldr(8, SP, SAVED_X8);
    a.svc0();
    a.bind(out);
    for q in (0..32).step_by(2) {
        a.ldp_q(q, q + 1, SP, SAVED_Q + 16 * q as i32);
    }
    a.ldp(9, 10, SP, SAVED_FLAGS);
    a.msr_nzcv(9);
    a.msr_fpsr(10);
    a.ldr(1, SP, 8);
    for (r1, r2, off) in &PAIRS[1..] {
        a.ldp(*r1, *r2, SP, *off);
    }
    a.add_imm(SP, SP, FRAME);
    a.ret();
    Ok(())
}

/// `dlfm_entry(nr, args, __libc_stack_end)` through `call`.
fn call_wrapper(
    a: &mut Asm,
    layout: &Layout,
    call: impl FnOnce(&mut Asm) -> Result<(), AsmError>,
) -> Result<(), AsmError> {
    a.ldr(0, SP, SAVED_X8);
    a.mov_from_sp(1);
    a.load_at(2, layout.stack_end_vaddr)?;
    call(a)
}

/// The resolver: finds the wrapper's entry through the aux vector and the
/// program's PT_NOTE segments and stores it (or NO_WRAPPER) in the slot;
/// returns it in x16. Uses x9-x17 only.
fn resolver(a: &mut Asm, layout: &Layout) -> Result<(), AsmError> {
    let env_loop = a.label();
    let aux_loop = a.label();
    let not_phdr = a.label();
    let aux_done = a.label();
    let find_phdr = a.label();
    let got_base = a.label();
    let each_note = a.label();
    let scan = a.label();
    let scan_next = a.label();
    let next_phdr = a.label();
    let none = a.label();
    let store = a.label();
    let magic_lo = u64::from_le_bytes(ENTRY_MAGIC[..8].try_into().expect("8 bytes"));
    let magic_hi = u64::from_le_bytes(ENTRY_MAGIC[8..].try_into().expect("8 bytes"));

    // x9 = __libc_stack_end (-> argc); skip argv and envp to the aux vector.
    a.load_at(9, layout.stack_end_vaddr)?;
    a.cbz(9, none);
    a.ldr(10, 9, 0);
    a.add_lsl(9, 9, 10, 3);
    a.add_imm(9, 9, 16);
    a.bind(env_loop);
    a.ldr_post(10, 9, 8);
    a.cbnz(10, env_loop);
    // x11 = AT_PHDR, x12 = AT_PHNUM.
    a.mov_imm(11, 0);
    a.mov_imm(12, 0);
    a.bind(aux_loop);
    a.ldr_post(10, 9, 8);
    a.ldr_post(13, 9, 8);
    a.cbz(10, aux_done);
    a.cmp_imm(10, AT_PHDR);
    a.b_cond(Cond::Ne, not_phdr);
    a.mov(11, 13);
    a.bind(not_phdr);
    a.cmp_imm(10, AT_PHNUM);
    a.b_cond(Cond::Ne, aux_loop);
    a.mov(12, 13);
    a.b(aux_loop);
    a.bind(aux_done);
    a.cbz(11, none);
    a.cbz(12, none);
    // x14 = load base = AT_PHDR - p_vaddr(PT_PHDR).
    a.mov(9, 11);
    a.mov(10, 12);
    a.bind(find_phdr);
    a.ldr_w(13, 9, 0);
    a.cmp_w_imm(13, PT_PHDR);
    a.b_cond(Cond::Eq, got_base);
    a.add_imm(9, 9, PHENT as u32);
    a.subs_imm(10, 10, 1);
    a.b_cond(Cond::Ne, find_phdr);
    a.b(none);
    a.bind(got_base);
    a.ldr(13, 9, 16);
    a.sub(14, 11, 13);
    // For each PT_NOTE: scan [base + p_vaddr, + p_filesz - 20] in 4-byte
    // steps for the magic followed by the i32 offset of the entry.
    a.mov(9, 11);
    a.mov(10, 12);
    a.bind(each_note);
    a.ldr_w(13, 9, 0);
    a.cmp_w_imm(13, PT_NOTE);
    a.b_cond(Cond::Ne, next_phdr);
    a.ldr(15, 9, 16);
    a.add_lsl(15, 15, 14, 0);
    a.ldr(13, 9, 32);
    a.add_lsl(13, 13, 15, 0);
    a.sub_imm(13, 13, 20);
    a.bind(scan);
    a.cmp(15, 13);
    a.b_cond(Cond::Hi, next_phdr);
    a.ldr(16, 15, 0);
    a.mov_imm(17, magic_lo);
    a.cmp(16, 17);
    a.b_cond(Cond::Ne, scan_next);
    a.ldr(16, 15, 8);
    a.mov_imm(17, magic_hi);
    a.cmp(16, 17);
    a.b_cond(Cond::Ne, scan_next);
    a.ldrsw(16, 15, 16);
    a.add_lsl(16, 16, 15, 0);
    a.add_imm(16, 16, 16);
    a.b(store);
    a.bind(scan_next);
    a.add_imm(15, 15, 4);
    a.b(scan);
    a.bind(next_phdr);
    a.add_imm(9, 9, PHENT as u32);
    a.subs_imm(10, 10, 1);
    a.b_cond(Cond::Ne, each_note);
    a.bind(none);
    a.mov_imm(16, NO_WRAPPER);
    a.bind(store);
    a.store_at(16, 17, layout.slot_vaddr)?;
    a.ret();
    Ok(())
}
