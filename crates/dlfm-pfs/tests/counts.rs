//! The simulated file system on a real FUSE mount: it serves the backing
//! directory, counts requests by type for a known sequence of calls, queues
//! requests on its service threads, and unmounts cleanly.

use std::path::Path;
use std::time::{Duration, Instant};

use dlfm_pfs::{Client, Model, Mount};

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(backing.join("lib")).unwrap();
    std::fs::write(backing.join("lib/data.bin"), vec![7u8; 10000]).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    (dir, backing, mnt)
}

fn mounted(mnt: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == mnt.to_str())
}

#[test]
fn counts_a_known_sequence_of_calls() {
    let (_dir, backing, mnt) = setup();
    let model = Model {
        metadata_latency: Duration::ZERO,
        ..Model::default()
    };
    let m = Mount::new(&backing, &mnt, &model).unwrap();
    assert!(mounted(&mnt));
    // Warm-up: the kernel may ask for the root's attributes once.
    let _ = std::fs::metadata(&mnt);
    m.reset();

    // Three failed lookups: each one reaches the server (no entry caching).
    for name in ["a.so", "b.so", "c.so"] {
        assert!(std::fs::metadata(mnt.join("lib").join(name)).is_err());
    }
    let c = m.counts();
    assert_eq!(
        c.get("lookup"),
        3 + 3,
        "3 lookups of lib/ and 3 failed probes: {}",
        c.report()
    );

    m.reset();
    let data = std::fs::read(mnt.join("lib/data.bin")).unwrap();
    assert_eq!(data, vec![7u8; 10000]);
    // The kernel sends release after close, asynchronously.
    let deadline = Instant::now() + Duration::from_secs(2);
    while m.counts().get("release") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let c = m.counts();
    assert_eq!(c.get("open"), 1, "{}", c.report());
    assert_eq!(c.get("release"), 1, "{}", c.report());
    assert!(c.get("read") >= 1, "{}", c.report());
    assert_eq!(c.get("lookup"), 2, "lib and data.bin: {}", c.report());

    m.reset();
    let names: Vec<_> = std::fs::read_dir(mnt.join("lib"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("data.bin")]);
    assert!(m.counts().get("readdir") >= 1);

    let total = m.counts().total();
    let last = m.unmount();
    assert!(last.total() >= total);
    assert!(!mounted(&mnt), "unmounted");
}

#[test]
fn one_service_thread_makes_requests_queue() {
    let (_dir, backing, mnt) = setup();
    let model = Model {
        metadata_latency: Duration::from_millis(20),
        threads: 1,
        ..Model::default()
    };
    let m = Mount::new(&backing, &mnt, &model).unwrap();
    let _ = std::fs::metadata(&mnt);
    let start = Instant::now();
    std::thread::scope(|s| {
        for i in 0..4 {
            let p = mnt.join(format!("missing{i}"));
            s.spawn(move || assert!(std::fs::metadata(p).is_err()));
        }
    });
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(80),
        "4 lookups of 20 ms on one thread queue: {took:?}"
    );
    drop(m);
    assert!(!mounted(&mnt));
}

/// Lookups of one found and one missing name, three times, and opens of the
/// found file, on a mount with `client`: the requests the server saw
/// (lookup, open).
fn repeated_lookups(client: Client) -> (u64, u64) {
    let (_dir, backing, mnt) = setup();
    let model = Model {
        metadata_latency: Duration::ZERO,
        client,
        ..Model::default()
    };
    let m = Mount::new(&backing, &mnt, &model).unwrap();
    let _ = std::fs::metadata(&mnt);
    m.reset();
    for _ in 0..3 {
        assert!(std::fs::metadata(mnt.join("lib/data.bin")).is_ok());
        assert!(std::fs::metadata(mnt.join("lib/missing.so")).is_err());
        assert_eq!(
            std::fs::read(mnt.join("lib/data.bin")).unwrap().len(),
            10000
        );
    }
    let c = m.counts();
    eprintln!("{client:?}:\n{}", c.report());
    let got = (c.get("lookup"), c.get("open"));
    drop(m);
    got
}

/// The client-cache settings: without caching every lookup reaches the
/// server; a Lustre-like client sends each found name once but every failed
/// lookup; a GPFS-like one sends each name once; opens always reach it.
#[test]
fn client_settings_cache_what_they_say() {
    let (lookups, opens) = repeated_lookups(Client::NONE);
    assert!(
        lookups >= 3 * 4,
        "none: every lookup reaches the server ({lookups})"
    );
    assert_eq!(opens, 3);
    let (lookups, opens) = repeated_lookups(Client::LUSTRE);
    assert_eq!(
        lookups,
        2 + 3,
        "lustre: lib/ and data.bin once, missing.so each time"
    );
    assert_eq!(opens, 3, "opens reach the server");
    let (lookups, opens) = repeated_lookups(Client::GPFS);
    assert_eq!(lookups, 3, "gpfs: lib/, data.bin and missing.so once each");
    assert_eq!(opens, 3);
}

/// Two nodes: two mounts of one server. Each has its own client cache (a
/// name one node looked up is asked for again by the other), and their
/// requests queue for the server's one service thread together.
#[test]
fn two_nodes_have_their_own_client_caches_and_share_the_queue() {
    let (dir, backing, mnt) = setup();
    let mnt2 = dir.path().join("mnt2");
    std::fs::create_dir_all(&mnt2).unwrap();
    let model = Model {
        metadata_latency: Duration::ZERO,
        client: Client::LUSTRE,
        ..Model::default()
    };
    let a = Mount::new(&backing, &mnt, &model).unwrap();
    let b = Mount::on(a.server(), &backing, &mnt2, &model).unwrap();
    let _ = (std::fs::metadata(&mnt), std::fs::metadata(&mnt2));
    a.reset();
    for _ in 0..3 {
        assert!(std::fs::metadata(mnt.join("lib/data.bin")).is_ok());
    }
    assert_eq!(
        a.counts().get("lookup"),
        2,
        "node 1: lib/ and data.bin once"
    );
    for _ in 0..3 {
        assert!(std::fs::metadata(mnt2.join("lib/data.bin")).is_ok());
    }
    assert_eq!(
        b.counts().get("lookup"),
        4,
        "node 2 asks again (its own cache), counted by the one server: {}",
        b.counts().report()
    );
    drop((a, b));

    let slow = Model {
        metadata_latency: Duration::from_millis(20),
        threads: 1,
        ..Model::default()
    };
    let a = Mount::new(&backing, &mnt, &slow).unwrap();
    let b = Mount::on(a.server(), &backing, &mnt2, &slow).unwrap();
    let _ = (std::fs::metadata(&mnt), std::fs::metadata(&mnt2));
    let start = Instant::now();
    std::thread::scope(|s| {
        for i in 0..4 {
            for m in [&mnt, &mnt2] {
                let p = m.join(format!("missing{i}"));
                s.spawn(move || assert!(std::fs::metadata(p).is_err()));
            }
        }
    });
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(160),
        "8 lookups of 20 ms, from two nodes, on the server's one thread queue: {took:?}"
    );
    drop((a, b));
    assert!(!mounted(&mnt) && !mounted(&mnt2));
}
