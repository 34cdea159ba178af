//! A bad cache never breaks the program: missing, truncated, corrupt, of
//! another format version, recorded for another program or with another
//! ld.so build, crafted (two libraries sharing bytes, counts past the end),
//! or not a cache at all. Each turns replay off for the process,
//! the program runs normally, and the trace says why.

use std::path::Path;

use dlfm_bytes::{le_u32, le_u64};
use dlfm_cache::layout::{header_at, seal, FILE_LEN, ID_LEN};
use dlfm_runtime::summary;
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// Runs the program with `DLFM_CACHE=cache` in read-cache mode and returns
/// the trace, after checking the program worked.
fn run_with(s: &Scenario, cache: &Path) -> String {
    let _ = std::fs::remove_dir_all(s.run_dir.join("dlcache.dbg"));
    std::fs::create_dir_all(s.run_dir.join("dlcache.dbg")).unwrap();
    for core in ["a", "b", "c", "d"] {
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        std::fs::write(
            s.run_dir
                .join(format!("dlcache.dbg/dlcache.dbg.{}.{core}", node.trim())),
            "",
        )
        .unwrap();
    }
    let mut cmd = s.cmd(Some("read-cache"));
    cmd.env("DLFM_CACHE", cache).env("DLCACHE_DBG", "1");
    s.run_ok(cmd);
    s.trace_text()
}

/// A copy of the scenario's cache, changed by `edit`.
fn variant(s: &Scenario, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
    let mut bytes = std::fs::read(s.cache()).unwrap();
    edit(&mut bytes);
    let path = s.run_dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn meta_len(bytes: &[u8]) -> usize {
    le_u64(bytes, header_at::META_LEN).unwrap() as usize
}

fn expect_off(trace: &str, reason: &str) {
    assert!(
        trace
            .lines()
            .any(|l| l.contains("read-cache off:") && l.contains(reason)),
        "the trace should say `{reason}`:\n{trace}"
    );
    assert!(
        !trace
            .lines()
            .any(|l| l.contains(" served ") && summary::parse(l.as_bytes()).is_none()),
        "nothing may be served from a bad cache:\n{trace}"
    );
    let summary = trace
        .lines()
        .find(|l| summary::parse(l.as_bytes()).is_some())
        .expect("a summary line");
    assert!(summary.contains("read-cache off"), "{summary}");
}

#[test]
fn every_bad_cache_turns_replay_off_and_the_program_runs() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();

    expect_off(
        &run_with(&s, &s.run_dir.join("missing.dat")),
        "cannot open the cache file",
    );

    let truncated = variant(&s, "truncated.dat", |b| b.truncate(b.len() / 2));
    expect_off(&run_with(&s, &truncated), "truncated or extended");

    let short = variant(&s, "short.dat", |b| b.truncate(100));
    expect_off(&run_with(&s, &short), "shorter than a header");

    let corrupt = variant(&s, "corrupt.dat", |b| {
        let at = meta_len(b) - 3;
        b[at] ^= 0x55;
    });
    expect_off(&run_with(&s, &corrupt), "bad checksum");

    let version = variant(&s, "version.dat", |b| {
        let at = header_at::VERSION;
        b[at..at + 4].copy_from_slice(&(dlfm_cache::layout::VERSION + 1).to_le_bytes());
        let m = meta_len(b);
        seal(&mut b[..m]);
    });
    expect_off(&run_with(&s, &version), "another cache format version");

    let garbage = s.run_dir.join("garbage.dat");
    std::fs::write(&garbage, vec![0xa5u8; 64 * 1024]).unwrap();
    expect_off(&run_with(&s, &garbage), "not a dlfm cache");

    // Another ld.so build: the cache's ld.so identity no longer matches.
    let other_ldso = variant(&s, "other-ldso.dat", |b| {
        let (count, off) = (
            le_u32(b, header_at::IDS_COUNT).unwrap() as usize,
            le_u64(b, header_at::IDS_OFF).unwrap() as usize,
        );
        for i in 0..count {
            let rec = off + i * ID_LEN;
            if b[rec] == dlfm_cache::layout::IdKind::Ldso as u8 {
                b[rec + 8] ^= 0xff;
            }
        }
        let m = meta_len(b);
        seal(&mut b[..m]);
    });
    expect_off(&run_with(&s, &other_ldso), "another ld.so build");

    // Crafted caches, checksum resealed so that only the table checks act:
    // two libraries sharing bytes, and counts far past the file's end.
    let overlapping = variant(&s, "overlapping.dat", |b| {
        let files = le_u64(b, header_at::FILES_OFF).unwrap() as usize;
        assert!(le_u32(b, header_at::FILES_COUNT).unwrap() >= 2);
        let first = b[files..files + 8].to_vec();
        b[files + FILE_LEN..files + FILE_LEN + 8].copy_from_slice(&first);
        let m = meta_len(b);
        seal(&mut b[..m]);
    });
    expect_off(&run_with(&s, &overlapping), "inconsistent tables");
    for (name, field) in [
        ("huge-entries.dat", header_at::ENTRIES_COUNT),
        ("huge-files.dat", header_at::FILES_COUNT),
    ] {
        let huge = variant(&s, name, |b| {
            b[field..field + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            let m = meta_len(b);
            seal(&mut b[..m]);
        });
        expect_off(&run_with(&s, &huge), "lies outside the cache file");
    }

    // Another program: a cache recorded for a different generated program.
    let other = Scenario::new(Spec {
        seed: 9,
        ..Spec::small()
    });
    other.pilot_and_pack();
    let foreign = s.run_dir.join("foreign.dat");
    std::fs::copy(other.cache(), &foreign).unwrap();
    expect_off(&run_with(&s, &foreign), "recorded for another program");
}
