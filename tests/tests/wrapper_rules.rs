//! The wrapper's hard rules (DESIGN.md), checked on its machine code as
//! linked into a PIE program: it adds no dynamic relocation except the one
//! `.fini_array` slot of the exit-time trace summary (applied long after
//! start-up), never touches `%fs`, and every call or jump in it is a direct
//! one into the wrapper's own code (no PLT or GOT, so no libc `memcpy`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use dlfm_tests::artifacts;

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
fn sections(bin: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    for l in run(Command::new("readelf").arg("-SW").arg(bin)).lines() {
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
fn relocations(bin: &Path) -> (Vec<String>, usize) {
    let fini = sections(bin).get(".fini_array").copied().unwrap_or((0, 0));
    let mut others = Vec::new();
    let mut in_fini = 0;
    for l in run(Command::new("readelf").arg("-rW").arg(bin))
        .lines()
        .filter(|l| l.contains("R_X86_64_"))
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
fn wrapper_functions(bin: &Path, archive: &Path) -> Vec<(u64, u64, String)> {
    let from_archive: BTreeSet<String> = run(Command::new("nm")
        .args(["--defined-only", "-j"])
        .arg(archive))
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty() && !l.ends_with(':'))
    .map(String::from)
    .collect();
    run(Command::new("nm").args(["-S", "--defined-only"]).arg(bin))
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

#[test]
fn the_linked_wrapper_obeys_the_rules() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("prog.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .unwrap();
    let plain = dir.path().join("plain");
    let with = dir.path().join("with");
    run(Command::new("cc")
        .args(["-pie", "-fPIE", "-o"])
        .arg(&plain)
        .arg(&src));
    run(Command::new("cc")
        .args(["-pie", "-fPIE", "-o"])
        .arg(&with)
        .arg(&src)
        .arg(&art.wrapper));

    // 1. Relocations: none added but the .fini_array slot.
    let (plain_relocs, plain_fini) = relocations(&plain);
    let (with_relocs, with_fini) = relocations(&with);
    assert_eq!(
        with_relocs, plain_relocs,
        "the wrapper added dynamic relocations"
    );
    assert_eq!(
        with_fini,
        plain_fini + 1,
        "expected exactly one .fini_array entry (the trace summary)"
    );

    // 2. Code: no %fs, no PLT, no GOT reference, no indirect branch, and
    //    every direct branch lands inside the wrapper.
    let funcs = wrapper_functions(&with, &art.wrapper);
    assert!(
        funcs.iter().any(|f| f.2 == "dlfm_entry"),
        "dlfm_entry not linked: {funcs:?}"
    );
    let got: Vec<(u64, u64)> = sections(&with)
        .into_iter()
        .filter(|(n, _)| n.starts_with(".got"))
        .map(|(_, r)| r)
        .collect();
    let inside = |a: u64| funcs.iter().any(|f| f.0 <= a && a < f.1);
    let mut problems = Vec::new();
    for (start, end, name) in &funcs {
        let dis = run(Command::new("objdump")
            .args(["-d", "--no-show-raw-insn"])
            .arg(format!("--start-address={start:#x}"))
            .arg(format!("--stop-address={end:#x}"))
            .arg(&with));
        for insn in dis
            .lines()
            .filter_map(|l| l.split_once(":\t").map(|x| x.1.trim()))
        {
            let mnemonic = insn.split_whitespace().next().unwrap_or("");
            if insn.contains("%fs") {
                problems.push(format!("{name}: %fs access: {insn}"));
            }
            if insn.contains("@plt") {
                problems.push(format!("{name}: PLT call: {insn}"));
            }
            if mnemonic.starts_with("call") || mnemonic.starts_with('j') {
                if insn.contains('*') {
                    problems.push(format!("{name}: indirect branch: {insn}"));
                } else if let Some(t) = insn
                    .split_whitespace()
                    .nth(1)
                    .and_then(|t| u64::from_str_radix(t, 16).ok())
                {
                    if !inside(t) {
                        problems.push(format!("{name}: branch out of the wrapper: {insn}"));
                    }
                }
            }
            let target = insn
                .split("# ")
                .nth(1)
                .and_then(|c| c.split_whitespace().next())
                .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
            if target.is_some_and(|a| got.iter().any(|g| g.0 <= a && a < g.1)) {
                problems.push(format!("{name}: GOT reference: {insn}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "wrapper rule violations:\n{}",
        problems.join("\n")
    );
}
