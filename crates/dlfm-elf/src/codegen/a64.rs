//! A small aarch64 assembler for the code dlpatch adds: the few instruction
//! forms the trampolines, the stub and the resolver use, with labels. Each
//! encoder follows the Arm architecture manual's bit layout; a test checks
//! every form against binutils' disassembler.

/// A general register number (0-30; 31 is `sp` or `xzr` by instruction).
pub type Reg = u32;
/// The stack pointer (in forms where 31 means sp).
pub const SP: Reg = 31;
/// The zero register (in forms where 31 means xzr).
pub const XZR: Reg = 31;

/// A branch condition.
#[derive(Clone, Copy)]
pub enum Cond {
    /// Equal.
    Eq = 0,
    /// Not equal.
    Ne = 1,
    /// Unsigned higher.
    Hi = 8,
}

/// A place in the code, bound once.
#[derive(Clone, Copy)]
pub struct Label(usize);

/// How a branch to a label is encoded.
#[derive(Clone, Copy)]
enum Fix {
    /// `b`/`bl`: imm26 at bits 0-25.
    Imm26,
    /// `b.cond`, `cbz`, `cbnz`: imm19 at bits 5-23.
    Imm19,
}

/// The code being assembled at a fixed address.
pub struct Asm {
    base: u64,
    words: Vec<u32>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label, Fix)>,
}

/// Why code cannot be assembled.
#[derive(Debug)]
pub struct AsmError(pub String);

impl std::fmt::Display for AsmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The word-offset field of a branch of `delta` bytes, `bits` wide (26 for
/// `b`/`bl`, 19 for `b.cond`/`cbz`, 14 for `tbz`), not yet shifted into
/// place; None if `delta` is not a multiple of 4 or out of range. Also what
/// `embed` resolves branch relocations with.
pub fn branch_field(delta: i64, bits: u32) -> Option<u32> {
    let words = delta / 4;
    let limit = 1i64 << (bits - 1);
    if delta % 4 != 0 || words < -limit || words >= limit {
        return None;
    }
    Some((words as u32) & ((1u32 << bits) - 1))
}

/// `b` from `from` to `to`, or None out of range (±128 MiB).
pub fn b_word(from: u64, to: u64) -> Option<u32> {
    Some(0x1400_0000 | branch_field(to as i64 - from as i64, 26)?)
}

/// The immediate bits (immlo at 29-30, immhi at 5-23) of an `adrp` at
/// `place` giving the 4 KiB page of `target`; None out of range (±4 GiB).
pub fn adrp_bits(place: u64, target: u64) -> Option<u32> {
    let pages = ((target & !0xfff) as i64 - (place & !0xfff) as i64) >> 12;
    if !(-(1 << 20)..(1 << 20)).contains(&pages) {
        return None;
    }
    let imm = pages as u32;
    Some((imm & 3) << 29 | ((imm >> 2) & 0x7ffff) << 5)
}

/// [`branch_field`] for the assembler, saying which branch failed.
fn field(delta: i64, bits: u32) -> Result<u32, AsmError> {
    branch_field(delta, bits)
        .ok_or_else(|| AsmError(format!("a branch of {delta} bytes is out of range")))
}

impl Asm {
    /// Code that will sit at `base` (4-byte aligned).
    pub fn new(base: u64) -> Asm {
        Asm {
            base,
            words: Vec::new(),
            labels: Vec::new(),
            fixups: Vec::new(),
        }
    }

    /// The address of the next instruction.
    pub fn here(&self) -> u64 {
        self.base + 4 * self.words.len() as u64
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next instruction.
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.words.len());
    }

    /// The address `l` is bound to.
    #[cfg(test)]
    pub fn address(&self, l: Label) -> Option<u64> {
        self.labels[l.0].map(|i| self.base + 4 * i as u64)
    }

    fn emit(&mut self, w: u32) {
        self.words.push(w);
    }

    fn branch_to_label(&mut self, w: u32, l: Label, fix: Fix) {
        self.fixups.push((self.words.len(), l, fix));
        self.emit(w);
    }

    /// Resolves the labels and returns the bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, AsmError> {
        for &(at, l, fix) in &self.fixups {
            let target = self.labels[l.0].ok_or_else(|| AsmError("an unbound label".into()))?;
            let delta = (target as i64 - at as i64) * 4;
            self.words[at] |= match fix {
                Fix::Imm26 => field(delta, 26)?,
                Fix::Imm19 => field(delta, 19)? << 5,
            };
        }
        Ok(self.words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }

    /// `b label`.
    pub fn b(&mut self, l: Label) {
        self.branch_to_label(0x1400_0000, l, Fix::Imm26);
    }

    /// `bl label`.
    pub fn bl(&mut self, l: Label) {
        self.branch_to_label(0x9400_0000, l, Fix::Imm26);
    }

    /// `b.cond label`.
    pub fn b_cond(&mut self, c: Cond, l: Label) {
        self.branch_to_label(0x5400_0000 | c as u32, l, Fix::Imm19);
    }

    /// `cbz xt, label`.
    pub fn cbz(&mut self, rt: Reg, l: Label) {
        self.branch_to_label(0xb400_0000 | rt, l, Fix::Imm19);
    }

    /// `cbnz xt, label`.
    pub fn cbnz(&mut self, rt: Reg, l: Label) {
        self.branch_to_label(0xb500_0000 | rt, l, Fix::Imm19);
    }

    /// `b addr`.
    pub fn b_to(&mut self, addr: u64) -> Result<(), AsmError> {
        let f = field(addr as i64 - self.here() as i64, 26)?;
        self.emit(0x1400_0000 | f);
        Ok(())
    }

    /// `bl addr`.
    pub fn bl_to(&mut self, addr: u64) -> Result<(), AsmError> {
        let f = field(addr as i64 - self.here() as i64, 26)?;
        self.emit(0x9400_0000 | f);
        Ok(())
    }

    /// `blr xn`.
    pub fn blr(&mut self, rn: Reg) {
        self.emit(0xd63f_0000 | rn << 5);
    }

    /// `ret`.
    pub fn ret(&mut self) {
        self.emit(0xd65f_03c0);
    }

    /// `svc #0`.
    pub fn svc0(&mut self) {
        self.emit(0xd400_0001);
    }

    /// `stp xt, xt2, [xn, #off]!` (pre-index, off a multiple of 8).
    pub fn stp_pre(&mut self, rt: Reg, rt2: Reg, rn: Reg, off: i32) {
        self.emit(0xa980_0000 | pair(rt, rt2, rn, off, 8));
    }

    /// `ldp xt, xt2, [xn], #off` (post-index).
    pub fn ldp_post(&mut self, rt: Reg, rt2: Reg, rn: Reg, off: i32) {
        self.emit(0xa8c0_0000 | pair(rt, rt2, rn, off, 8));
    }

    /// `stp xt, xt2, [xn, #off]`.
    pub fn stp(&mut self, rt: Reg, rt2: Reg, rn: Reg, off: i32) {
        self.emit(0xa900_0000 | pair(rt, rt2, rn, off, 8));
    }

    /// `ldp xt, xt2, [xn, #off]`.
    pub fn ldp(&mut self, rt: Reg, rt2: Reg, rn: Reg, off: i32) {
        self.emit(0xa940_0000 | pair(rt, rt2, rn, off, 8));
    }

    /// `stp qt, qt2, [xn, #off]` (off a multiple of 16).
    pub fn stp_q(&mut self, rt: Reg, rt2: Reg, rn: Reg, off: i32) {
        self.emit(0xad00_0000 | pair(rt, rt2, rn, off, 16));
    }

    /// `ldp qt, qt2, [xn, #off]`.
    pub fn ldp_q(&mut self, rt: Reg, rt2: Reg, rn: Reg, off: i32) {
        self.emit(0xad40_0000 | pair(rt, rt2, rn, off, 16));
    }

    /// `ldr xt, [xn, #off]` (unsigned offset, a multiple of 8).
    pub fn ldr(&mut self, rt: Reg, rn: Reg, off: u32) {
        self.emit(0xf940_0000 | (off / 8) << 10 | rn << 5 | rt);
    }

    /// `str xt, [xn, #off]`.
    pub fn str(&mut self, rt: Reg, rn: Reg, off: u32) {
        self.emit(0xf900_0000 | (off / 8) << 10 | rn << 5 | rt);
    }

    /// `ldr wt, [xn, #off]` (a multiple of 4).
    pub fn ldr_w(&mut self, rt: Reg, rn: Reg, off: u32) {
        self.emit(0xb940_0000 | (off / 4) << 10 | rn << 5 | rt);
    }

    /// `ldrsw xt, [xn, #off]` (a multiple of 4).
    pub fn ldrsw(&mut self, rt: Reg, rn: Reg, off: u32) {
        self.emit(0xb980_0000 | (off / 4) << 10 | rn << 5 | rt);
    }

    /// `ldr xt, [xn], #off` (post-index).
    pub fn ldr_post(&mut self, rt: Reg, rn: Reg, off: i32) {
        self.emit(0xf840_0400 | ((off as u32) & 0x1ff) << 12 | rn << 5 | rt);
    }

    /// `add xd, xn, #imm` (sp allowed).
    pub fn add_imm(&mut self, rd: Reg, rn: Reg, imm: u32) {
        self.emit(0x9100_0000 | imm << 10 | rn << 5 | rd);
    }

    /// `sub xd, xn, #imm` (sp allowed).
    pub fn sub_imm(&mut self, rd: Reg, rn: Reg, imm: u32) {
        self.emit(0xd100_0000 | imm << 10 | rn << 5 | rd);
    }

    /// `subs xd, xn, #imm`.
    pub fn subs_imm(&mut self, rd: Reg, rn: Reg, imm: u32) {
        self.emit(0xf100_0000 | imm << 10 | rn << 5 | rd);
    }

    /// `cmp xn, #imm`.
    pub fn cmp_imm(&mut self, rn: Reg, imm: u32) {
        self.subs_imm(XZR, rn, imm);
    }

    /// `cmp wn, #imm`.
    pub fn cmp_w_imm(&mut self, rn: Reg, imm: u32) {
        self.emit(0x7100_0000 | imm << 10 | rn << 5 | XZR);
    }

    /// `cmp xn, xm`.
    pub fn cmp(&mut self, rn: Reg, rm: Reg) {
        self.emit(0xeb00_0000 | rm << 16 | rn << 5 | XZR);
    }

    /// `add xd, xn, xm, lsl #shift`.
    pub fn add_lsl(&mut self, rd: Reg, rn: Reg, rm: Reg, shift: u32) {
        self.emit(0x8b00_0000 | rm << 16 | shift << 10 | rn << 5 | rd);
    }

    /// `sub xd, xn, xm`.
    pub fn sub(&mut self, rd: Reg, rn: Reg, rm: Reg) {
        self.emit(0xcb00_0000 | rm << 16 | rn << 5 | rd);
    }

    /// `mov xd, xm` (not sp).
    pub fn mov(&mut self, rd: Reg, rm: Reg) {
        self.emit(0xaa00_03e0 | rm << 16 | rd);
    }

    /// `mov xd, sp`.
    pub fn mov_from_sp(&mut self, rd: Reg) {
        self.add_imm(rd, SP, 0);
    }

    /// `movz`/`movk` sequence putting `value` in xd.
    pub fn mov_imm(&mut self, rd: Reg, value: u64) {
        self.emit(0xd280_0000 | ((value & 0xffff) as u32) << 5 | rd);
        for hw in 1..4u32 {
            let part = ((value >> (16 * hw)) & 0xffff) as u32;
            if part != 0 {
                self.emit(0xf280_0000 | hw << 21 | part << 5 | rd);
            }
        }
    }

    /// `adrp xd, addr`: the 4 KiB page of `addr`.
    pub fn adrp(&mut self, rd: Reg, addr: u64) -> Result<(), AsmError> {
        let bits = adrp_bits(self.here(), addr)
            .ok_or_else(|| AsmError("an address is out of adrp range".into()))?;
        self.emit(0x9000_0000 | bits | rd);
        Ok(())
    }

    /// `adrp xd, addr; ldr xd, [xd, #lo12(addr)]`: the 8 bytes at `addr`
    /// (8-byte aligned).
    pub fn load_at(&mut self, rd: Reg, addr: u64) -> Result<(), AsmError> {
        self.adrp(rd, addr)?;
        self.ldr(rd, rd, (addr & 0xfff) as u32);
        Ok(())
    }

    /// `adrp tmp, addr; str xt, [tmp, #lo12(addr)]`.
    pub fn store_at(&mut self, rt: Reg, tmp: Reg, addr: u64) -> Result<(), AsmError> {
        self.adrp(tmp, addr)?;
        self.str(rt, tmp, (addr & 0xfff) as u32);
        Ok(())
    }

    /// `mrs xt, nzcv`.
    pub fn mrs_nzcv(&mut self, rt: Reg) {
        self.emit(0xd53b_4200 | rt);
    }

    /// `msr nzcv, xt`.
    pub fn msr_nzcv(&mut self, rt: Reg) {
        self.emit(0xd51b_4200 | rt);
    }

    /// `mrs xt, fpsr`.
    pub fn mrs_fpsr(&mut self, rt: Reg) {
        self.emit(0xd53b_4420 | rt);
    }

    /// `msr fpsr, xt`.
    pub fn msr_fpsr(&mut self, rt: Reg) {
        self.emit(0xd51b_4420 | rt);
    }
}

/// The register and offset fields of a load/store pair (`scale` bytes per
/// unit of the 7-bit signed offset).
fn pair(rt: Reg, rt2: Reg, rn: Reg, off: i32, scale: i32) -> u32 {
    (((off / scale) as u32) & 0x7f) << 15 | rt2 << 10 | rn << 5 | rt
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form, as binutils prints it.
    #[test]
    fn every_form_disassembles_as_written() {
        let base = 0x40_0000;
        let mut a = Asm::new(base);
        let top = a.label();
        let end = a.label();
        a.bind(top);
        let mut want: Vec<String> = Vec::new();
        let mut w = |s: &str| want.push(s.to_string());
        a.b(end);
        w("b 0x400000+END");
        a.bl(top);
        w("bl 0x400000");
        a.b_cond(Cond::Ne, top);
        w("b.ne 0x400000");
        a.b_cond(Cond::Hi, end);
        w("b.hi 0x400000+END");
        a.cbz(3, top);
        w("cbz x3, 0x400000");
        a.cbnz(10, end);
        w("cbnz x10, 0x400000+END");
        a.b_to(base + 0x1000).unwrap();
        w("b 0x401000");
        a.bl_to(base - 0x20).unwrap();
        w("bl 0x3fffe0");
        a.blr(16);
        w("blr x16");
        a.ret();
        w("ret");
        a.svc0();
        w("svc #0x0");
        a.stp_pre(29, 30, SP, -16);
        w("stp x29, x30, [sp, #-16]!");
        a.ldp_post(29, 30, SP, 16);
        w("ldp x29, x30, [sp], #16");
        a.stp(18, 30, SP, 144);
        w("stp x18, x30, [sp, #144]");
        a.ldp(2, 3, SP, 16);
        w("ldp x2, x3, [sp, #16]");
        a.stp_q(30, 31, SP, 656);
        w("stp q30, q31, [sp, #656]");
        a.ldp_q(0, 1, SP, 176);
        w("ldp q0, q1, [sp, #176]");
        a.ldr(16, 17, 0x238);
        w("ldr x16, [x17, #568]");
        a.str(16, 17, 8);
        w("str x16, [x17, #8]");
        a.ldr_w(13, 9, 4);
        w("ldr w13, [x9, #4]");
        a.ldrsw(16, 15, 16);
        w("ldrsw x16, [x15, #16]");
        a.ldr_post(10, 9, 8);
        w("ldr x10, [x9], #8");
        a.add_imm(9, 9, 16);
        w("add x9, x9, #0x10");
        a.sub_imm(SP, SP, 688);
        w("sub sp, sp, #0x2b0");
        a.subs_imm(10, 10, 1);
        w("subs x10, x10, #0x1");
        a.cmp_imm(16, 1);
        w("cmp x16, #0x1");
        a.cmp_w_imm(13, 6);
        w("cmp w13, #0x6");
        a.cmp(15, 13);
        w("cmp x15, x13");
        a.add_lsl(9, 9, 10, 3);
        w("add x9, x9, x10, lsl #3");
        a.sub(14, 11, 13);
        w("sub x14, x11, x13");
        a.mov(0, 8);
        w("mov x0, x8");
        a.mov_from_sp(1);
        w("mov x1, sp");
        a.mov_imm(17, 0x6d66_6c64_2d65_6e74);
        w("mov x17, #0x6e74");
        w("movk x17, #0x2d65, lsl #16");
        w("movk x17, #0x6c64, lsl #32");
        w("movk x17, #0x6d66, lsl #48");
        a.adrp(2, base + 0x5_1234).unwrap();
        w("adrp x2, 0x451000");
        a.mrs_nzcv(9);
        w("mrs x9, nzcv");
        a.msr_nzcv(9);
        w("msr nzcv, x9");
        a.mrs_fpsr(10);
        w("mrs x10, fpsr");
        a.msr_fpsr(10);
        w("msr fpsr, x10");
        a.bind(end);
        let end_addr = a.address(end).unwrap();
        let bytes = a.finish().unwrap();
        let want: Vec<String> = want
            .iter()
            .map(|s| s.replace("0x400000+END", &format!("{end_addr:#x}")))
            .collect();

        let dir = std::env::temp_dir().join(format!("dlfm-a64-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("code.bin");
        std::fs::write(&bin, &bytes).unwrap();
        let out = std::process::Command::new("aarch64-linux-gnu-objdump")
            .args(["-D", "-b", "binary", "-m", "aarch64", "--no-show-raw-insn"])
            .arg(format!("--adjust-vma={base:#x}"))
            .arg(&bin)
            .output()
            .expect("aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu)");
        std::fs::remove_dir_all(&dir).unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let got: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_once(":\t").map(|x| x.1))
            .map(|i| {
                let i = i.split("//").next().unwrap().trim();
                let i = i.split(" <").next().unwrap();
                i.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{text}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "\n{text}");
        }
    }
}
