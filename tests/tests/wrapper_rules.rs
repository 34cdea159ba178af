//! The wrapper's hard rules (DESIGN.md), checked on its machine code as
//! linked into a PIE program, on x86_64 and on aarch64 (cross-built): it adds
//! no dynamic relocation except the one `.fini_array` slot of the exit-time
//! trace summary (applied long after start-up), never touches the thread
//! pointer (`%fs`, `tpidr_el0`), and every call or jump in it is a direct one
//! into the wrapper's own code (no PLT or GOT, so no libc `memcpy`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use dlfm_tests::{aarch64, artifacts};

/// The tools of one architecture.
struct Arch {
    cc: &'static str,
    readelf: &'static str,
    nm: &'static str,
    objdump: &'static str,
    /// Relocation type prefix in `readelf -r`.
    reloc: &'static str,
}

const X86_64: Arch = Arch {
    cc: "cc",
    readelf: "readelf",
    nm: "nm",
    objdump: "objdump",
    reloc: "R_X86_64_",
};

const AARCH64: Arch = Arch {
    cc: aarch64::CC,
    readelf: "aarch64-linux-gnu-readelf",
    nm: "aarch64-linux-gnu-nm",
    objdump: "aarch64-linux-gnu-objdump",
    reloc: "R_AARCH64_",
};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Section name -> address range.
fn sections(arch: &Arch, bin: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    for l in run(Command::new(arch.readelf).arg("-SW").arg(bin)).lines() {
        let Some((_, rest)) = l.split_once(']') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(name), Some(addr), Some(size)) = (f.first(), f.get(2), f.get(4)) {
            if let (Ok(a), Ok(s)) = (u64::from_str_radix(addr, 16), u64::from_str_radix(size, 16)) {
                m.insert(name.to_string(), (a, a + s));
            }
        }
    }
    m
}

/// Dynamic relocations outside `.fini_array` (type and symbol, sorted), and
/// the count inside it.
fn relocations(arch: &Arch, bin: &Path) -> (Vec<String>, usize) {
    let fini = sections(arch, bin)
        .get(".fini_array")
        .copied()
        .unwrap_or((0, 0));
    let mut others = Vec::new();
    let mut in_fini = 0;
    for l in run(Command::new(arch.readelf).arg("-rW").arg(bin))
        .lines()
        .filter(|l| l.contains(arch.reloc))
    {
        let off = u64::from_str_radix(l.split_whitespace().next().unwrap(), 16).unwrap();
        if (fini.0..fini.1).contains(&off) {
            in_fini += 1;
        } else {
            // Type and symbol; addresses and addends move with the layout.
            let f: Vec<&str> = l.split_whitespace().collect();
            others.push(format!("{} {}", f[2], f.get(4).unwrap_or(&"")));
        }
    }
    others.sort();
    (others, in_fini)
}

/// Functions of `bin` (start, end, name) defined by the wrapper archive.
fn wrapper_functions(arch: &Arch, bin: &Path, archive: &Path) -> Vec<(u64, u64, String)> {
    let from_archive: BTreeSet<String> = run(Command::new(arch.nm)
        .args(["--defined-only", "-j"])
        .arg(archive))
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty() && !l.ends_with(':'))
    .map(String::from)
    .collect();
    run(Command::new(arch.nm)
        .args(["-S", "--defined-only"])
        .arg(bin))
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [start, size, kind, name] = f[..] else {
            return None;
        };
        if !matches!(kind, "t" | "T") || !from_archive.contains(name) {
            return None;
        }
        let start = u64::from_str_radix(start, 16).ok()?;
        Some((
            start,
            start + u64::from_str_radix(size, 16).ok()?,
            name.to_string(),
        ))
    })
    .collect()
}

/// One instruction's breach of the rules, if any: `insn` as objdump prints
/// it, `inside` whether an address is in the wrapper's code, `got` whether
/// it is in the GOT, `pages` the last `adrp` page per register (aarch64).
fn breach(
    arch: &Arch,
    insn: &str,
    inside: &dyn Fn(u64) -> bool,
    got: &dyn Fn(u64) -> bool,
    pages: &mut BTreeMap<String, u64>,
) -> Option<String> {
    let mut words = insn.split_whitespace();
    let mnemonic = words.next().unwrap_or("");
    let first = words.next().unwrap_or("");
    let hex = |t: &str| u64::from_str_radix(t.trim_start_matches("0x"), 16).ok();
    if insn.contains("@plt") {
        return Some("PLT call".into());
    }
    if arch.reloc == X86_64.reloc {
        if insn.contains("%fs") {
            return Some("%fs access".into());
        }
        if mnemonic.starts_with("call") || mnemonic.starts_with('j') {
            if insn.contains('*') {
                return Some("indirect branch".into());
            }
            if hex(first).is_some_and(|t| !inside(t)) {
                return Some("branch out of the wrapper".into());
            }
        }
        let target = insn
            .split("# ")
            .nth(1)
            .and_then(|c| c.split_whitespace().next())
            .and_then(hex);
        return target.filter(|&a| got(a)).map(|_| "GOT reference".into());
    }
    // aarch64
    if insn.contains("tpidr_el0") {
        return Some("thread pointer access".into());
    }
    if matches!(mnemonic, "br" | "blr" | "braa" | "blraa") {
        return Some("indirect branch".into());
    }
    let direct = matches!(mnemonic, "b" | "bl" | "cbz" | "cbnz" | "tbz" | "tbnz")
        || mnemonic.starts_with("b.");
    if direct {
        let target = insn
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .skip(1)
            .find_map(|w| (w.len() > 2).then(|| hex(w)).flatten());
        if target.is_some_and(|t| !inside(t)) {
            return Some("branch out of the wrapper".into());
        }
    }
    let ops: Vec<&str> = insn
        .split_once(' ')
        .map_or("", |x| x.1)
        .split([',', ' ', '[', ']'])
        .filter(|w| !w.is_empty())
        .collect();
    if mnemonic == "adrp" {
        if let (Some(reg), Some(page)) = (ops.first(), ops.get(1).and_then(|p| hex(p))) {
            pages.insert(reg.to_string(), page);
        }
    } else if mnemonic == "ldr" {
        // ldr xD, [xN, #imm]
        if let (Some(base), Some(imm)) = (ops.get(1), ops.get(2)) {
            let imm = imm
                .strip_prefix('#')
                .and_then(|i| i.parse::<u64>().ok().or_else(|| hex(i)));
            if let (Some(page), Some(imm)) = (pages.get(*base), imm) {
                if got(page + imm) {
                    return Some("GOT reference".into());
                }
            }
        }
    }
    None
}

/// Links the wrapper `archive` into a PIE with `arch`'s compiler and checks
/// the rules on the result.
fn check(arch: &Arch, archive: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("prog.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .unwrap();
    let plain = dir.path().join("plain");
    let with = dir.path().join("with");
    run(Command::new(arch.cc)
        .args(["-pie", "-fPIE", "-o"])
        .arg(&plain)
        .arg(&src));
    run(Command::new(arch.cc)
        .args(["-pie", "-fPIE", "-o"])
        .arg(&with)
        .arg(&src)
        .arg(archive));

    // 1. Relocations: none added but the .fini_array slot.
    let (plain_relocs, plain_fini) = relocations(arch, &plain);
    let (with_relocs, with_fini) = relocations(arch, &with);
    assert_eq!(
        with_relocs, plain_relocs,
        "{}: the wrapper added dynamic relocations",
        arch.cc
    );
    assert_eq!(
        with_fini,
        plain_fini + 1,
        "{}: expected exactly one .fini_array entry (the trace summary)",
        arch.cc
    );

    // 2. Code: no thread pointer, no PLT, no GOT reference, no indirect
    //    branch, and every direct branch lands inside the wrapper.
    let funcs = wrapper_functions(arch, &with, archive);
    assert!(
        funcs.iter().any(|f| f.2 == "dlfm_entry"),
        "dlfm_entry not linked: {funcs:?}"
    );
    let gots: Vec<(u64, u64)> = sections(arch, &with)
        .into_iter()
        .filter(|(n, _)| n.starts_with(".got"))
        .map(|(_, r)| r)
        .collect();
    let got = |a: u64| gots.iter().any(|g| g.0 <= a && a < g.1);
    let inside = |a: u64| funcs.iter().any(|f| f.0 <= a && a < f.1);
    let mut problems = Vec::new();
    for (start, end, name) in &funcs {
        let dis = run(Command::new(arch.objdump)
            .args(["-d", "--no-show-raw-insn"])
            .arg(format!("--start-address={start:#x}"))
            .arg(format!("--stop-address={end:#x}"))
            .arg(&with));
        let mut pages = BTreeMap::new();
        for insn in dis
            .lines()
            .filter_map(|l| l.split_once(":\t").map(|x| x.1.trim()))
        {
            if let Some(why) = breach(arch, insn, &inside, &got, &mut pages) {
                problems.push(format!("{name}: {why}: {insn}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}: wrapper rule violations:\n{}",
        arch.cc,
        problems.join("\n")
    );
}

#[test]
fn the_linked_wrapper_obeys_the_rules() {
    check(&X86_64, &artifacts().wrapper);
}

#[test]
fn the_aarch64_wrapper_obeys_the_rules() {
    check(&AARCH64, aarch64::wrapper());
}
