//! x86_64's trampolines, common stub and resolver (assembled with iced-x86).

use iced_x86::code_asm::*;
use iced_x86::{BlockEncoderOptions, Code, Instruction, MemoryOperand, Register};

use super::{Code_, Layout, AT_PHDR, AT_PHNUM, ENTRY_MAGIC, NO_WRAPPER, PHENT, PT_NOTE, PT_PHDR};
use crate::finder::FoundSite;

/// `mov reg, [rip + target]` with `target` an absolute address.
fn load_rip(reg: Register, target: u64) -> Instruction {
    Instruction::with2(
        Code::Mov_r64_rm64,
        reg,
        MemoryOperand::with_base_displ(Register::RIP, target as i64),
    )
    .expect("valid operands")
}

/// Generates trampolines, the common stub and the resolver.
pub(super) fn generate(sites: &[FoundSite], layout: &Layout) -> Result<Code_, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut common = a.create_label();
    let mut resolve = a.create_label();
    let mut labels = Vec::new();
    for site in sites {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        labels.push(l);
        trampoline(&mut a, site, common)?;
    }
    a.set_label(&mut common)?;
    common_stub(&mut a, layout, resolve)?;
    if layout.embedded_entry.is_none() {
        a.set_label(&mut resolve)?;
        resolver(&mut a, layout)?;
    }
    let result = a.assemble_options(
        layout.code_vaddr,
        BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )?;
    let trampolines = labels
        .iter()
        .map(|l| result.label_ip(l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Code_ {
        bytes: result.inner.code_buffer,
        trampolines,
    })
}

/// Per site: the window's own instructions around a call to the stub, with
/// the red zone stepped over, then back to the instruction after the window.
fn trampoline(a: &mut CodeAssembler, site: &FoundSite, common: CodeLabel) -> Result<(), IcedError> {
    if !site.before.is_empty() {
        a.db(&site.before)?;
    }
    a.mov(eax, site.nr)?;
    a.lea(rsp, qword_ptr(rsp - 128))?;
    a.call(common)?;
    a.lea(rsp, qword_ptr(rsp + 128))?;
    if !site.after.is_empty() {
        a.db(&site.after)?;
    }
    a.jmp(site.window_vaddr + site.window_len())?;
    Ok(())
}

const XMM: [AsmRegisterXmm; 16] = [
    xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14,
    xmm15,
];

/// The common stub: eax = syscall number, the argument registers as the
/// kernel would take them. Preserves everything but rax (rcx and r11 are
/// restored too, which the kernel would not do).
fn common_stub(
    a: &mut CodeAssembler,
    layout: &Layout,
    resolve: CodeLabel,
) -> Result<(), IcedError> {
    let mut have = a.create_label();
    let mut none = a.create_label();
    let mut out = a.create_label();
    a.pushfq()?;
    a.push(rbp)?;
    a.mov(rbp, rsp)?;
    a.and(rsp, -16)?;
    a.sub(rsp, 256)?;
    for (i, x) in XMM.iter().enumerate() {
        a.movaps(xmmword_ptr(rsp + 16 * i as i32), *x)?;
    }
    // Eight pushes keep the 16-byte alignment; the last six form the
    // argument array [rdi, rsi, rdx, r10, r8, r9] at rsp.
    for r in [r11, rcx, r9, r8, r10, rdx, rsi, rdi] {
        a.push(r)?;
    }
    match layout.embedded_entry {
        Some(entry) => {
            a.mov(rdi, rax)?;
            a.mov(rsi, rsp)?;
            a.add_instruction(load_rip(Register::RDX, layout.stack_end_vaddr))?;
            a.call(entry)?;
            a.jmp(out)?;
        }
        None => {
            a.add_instruction(load_rip(Register::R11, layout.slot_vaddr))?;
            a.cmp(r11, NO_WRAPPER as i32)?;
            a.ja(have)?;
            a.je(none)?;
            a.call(resolve)?;
            a.cmp(r11, NO_WRAPPER as i32)?;
            a.je(none)?;
            a.set_label(&mut have)?;
            a.mov(rdi, rax)?;
            a.mov(rsi, rsp)?;
            a.add_instruction(load_rip(Register::RDX, layout.stack_end_vaddr))?;
            a.call(r11)?;
            a.jmp(out)?;
        }
    }
    // No wrapper: the real system call with the original arguments (the
    // resolver may have used the argument registers).
    a.set_label(&mut none)?;
    a.mov(rdi, qword_ptr(rsp))?;
    a.mov(rsi, qword_ptr(rsp + 8))?;
    a.mov(rdx, qword_ptr(rsp + 16))?;
    a.mov(r10, qword_ptr(rsp + 24))?;
    a.mov(r8, qword_ptr(rsp + 32))?;
    a.mov(r9, qword_ptr(rsp + 40))?;
    a.syscall()?;
    a.set_label(&mut out)?;
    for r in [rdi, rsi, rdx, r10, r8, r9, rcx, r11] {
        a.pop(r)?;
    }
    for (i, x) in XMM.iter().enumerate() {
        a.movaps(*x, xmmword_ptr(rsp + 16 * i as i32))?;
    }
    a.mov(rsp, rbp)?;
    a.pop(rbp)?;
    a.popfq()?;
    a.ret()?;
    Ok(())
}

/// The resolver: finds the wrapper's entry through the aux vector and the
/// program's PT_NOTE segments and stores it (or NO_WRAPPER) in the slot;
/// returns it in r11. Uses rcx, rdx, rsi, rdi, r8–r11 only (not rax, which
/// holds the syscall number).
fn resolver(a: &mut CodeAssembler, layout: &Layout) -> Result<(), IcedError> {
    let mut env_loop = a.create_label();
    let mut aux_loop = a.create_label();
    let mut not_phdr = a.create_label();
    let mut not_phnum = a.create_label();
    let mut aux_done = a.create_label();
    let mut find_phdr = a.create_label();
    let mut got_base = a.create_label();
    let mut each_note = a.create_label();
    let mut scan = a.create_label();
    let mut scan_next = a.create_label();
    let mut next_phdr = a.create_label();
    let mut none = a.create_label();
    let mut store = a.create_label();
    let magic_lo = u64::from_le_bytes(ENTRY_MAGIC[..8].try_into().expect("8 bytes"));
    let magic_hi = u64::from_le_bytes(ENTRY_MAGIC[8..].try_into().expect("8 bytes"));

    // rcx = __libc_stack_end (-> argc); skip argv and envp to the aux vector.
    a.add_instruction(load_rip(Register::RCX, layout.stack_end_vaddr))?;
    a.test(rcx, rcx)?;
    a.jz(none)?;
    a.mov(rdx, qword_ptr(rcx))?;
    a.lea(rcx, qword_ptr(rcx + rdx * 8 + 16))?;
    a.set_label(&mut env_loop)?;
    a.mov(rdx, qword_ptr(rcx))?;
    a.add(rcx, 8)?;
    a.test(rdx, rdx)?;
    a.jnz(env_loop)?;
    // r8 = AT_PHDR, r9 = AT_PHNUM.
    a.xor(r8d, r8d)?;
    a.xor(r9d, r9d)?;
    a.set_label(&mut aux_loop)?;
    a.mov(rdx, qword_ptr(rcx))?;
    a.test(rdx, rdx)?;
    a.jz(aux_done)?;
    a.cmp(rdx, AT_PHDR as i32)?;
    a.jne(not_phdr)?;
    a.mov(r8, qword_ptr(rcx + 8))?;
    a.set_label(&mut not_phdr)?;
    a.cmp(rdx, AT_PHNUM as i32)?;
    a.jne(not_phnum)?;
    a.mov(r9, qword_ptr(rcx + 8))?;
    a.set_label(&mut not_phnum)?;
    a.add(rcx, 16)?;
    a.jmp(aux_loop)?;
    a.set_label(&mut aux_done)?;
    a.test(r8, r8)?;
    a.jz(none)?;
    a.test(r9, r9)?;
    a.jz(none)?;
    // rsi = load base = AT_PHDR - p_vaddr(PT_PHDR).
    a.mov(rcx, r8)?;
    a.mov(r10, r9)?;
    a.set_label(&mut find_phdr)?;
    a.cmp(dword_ptr(rcx), PT_PHDR)?;
    a.je(got_base)?;
    a.add(rcx, PHENT as i32)?;
    a.dec(r10)?;
    a.jnz(find_phdr)?;
    a.jmp(none)?;
    a.set_label(&mut got_base)?;
    a.mov(rsi, r8)?;
    a.sub(rsi, qword_ptr(rcx + 16))?;
    // For each PT_NOTE: scan [base + p_vaddr, + p_filesz - 20] in 4-byte
    // steps for the magic followed by the i32 offset of the entry.
    a.mov(rcx, r8)?;
    a.mov(r10, r9)?;
    a.set_label(&mut each_note)?;
    a.cmp(dword_ptr(rcx), PT_NOTE)?;
    a.jne(next_phdr)?;
    a.mov(rdi, qword_ptr(rcx + 16))?;
    a.add(rdi, rsi)?;
    a.mov(rdx, qword_ptr(rcx + 32))?;
    a.add(rdx, rdi)?;
    a.sub(rdx, 20)?;
    a.set_label(&mut scan)?;
    a.cmp(rdi, rdx)?;
    a.ja(next_phdr)?;
    a.mov(r11, magic_lo)?;
    a.cmp(qword_ptr(rdi), r11)?;
    a.jne(scan_next)?;
    a.mov(r11, magic_hi)?;
    a.cmp(qword_ptr(rdi + 8), r11)?;
    a.jne(scan_next)?;
    a.movsxd(r11, dword_ptr(rdi + 16))?;
    a.lea(r11, qword_ptr(rdi + r11 + 16))?;
    a.jmp(store)?;
    a.set_label(&mut scan_next)?;
    a.add(rdi, 4)?;
    a.jmp(scan)?;
    a.set_label(&mut next_phdr)?;
    a.add(rcx, PHENT as i32)?;
    a.dec(r10)?;
    a.jnz(each_note)?;
    a.set_label(&mut none)?;
    a.mov(r11d, NO_WRAPPER as u32)?;
    a.set_label(&mut store)?;
    a.add_instruction(
        Instruction::with2(
            Code::Mov_rm64_r64,
            MemoryOperand::with_base_displ(Register::RIP, layout.slot_vaddr as i64),
            Register::R11,
        )
        .expect("valid operands"),
    )?;
    a.ret()?;
    Ok(())
}
