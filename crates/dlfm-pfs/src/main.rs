//! `dlfm-pfs BACKING MOUNTPOINT`: serves BACKING at MOUNTPOINT through the
//! simulated metadata server until unmounted (`fusermount3 -u MOUNTPOINT`
//! or Ctrl-C), then prints and writes the request counts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, Parser};

/// Serve a directory through a simulated parallel file system's metadata
/// server (FUSE), counting every request.
#[derive(Parser)]
#[command(name = "dlfm-pfs", version)]
struct Cli {
    /// The directory to serve.
    #[arg(required_unless_present = "man")]
    backing: Option<PathBuf>,
    /// Where to mount it (an empty directory).
    #[arg(required_unless_present = "man")]
    mountpoint: Option<PathBuf>,
    /// Microseconds each metadata request takes.
    #[arg(long, default_value_t = 200)]
    latency_us: u64,
    /// Microseconds each read takes.
    #[arg(long, default_value_t = 0)]
    read_latency_us: u64,
    /// Requests served at once.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The client's cache: `none` (every lookup reaches the server: a
    /// parallel file system under contention), `lustre` (found entries and
    /// attributes cached, failed lookups not), `gpfs` (both cached). Opens
    /// always reach the server.
    #[arg(long, default_value = "none", value_parser = ["none", "lustre", "gpfs"])]
    client: String,
    /// Milliseconds a found entry and its attributes stay cached
    /// (overrides --client's).
    #[arg(long, value_name = "MS")]
    entry_ttl_ms: Option<u64>,
    /// Milliseconds a missing name stays cached as missing (overrides
    /// --client's; 0: never cached).
    #[arg(long, value_name = "MS")]
    negative_ttl_ms: Option<u64>,
    /// Also write the counts to this file at unmount.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Write the man page into DIR and exit.
    #[arg(long = dlfm_cli::man::OPTION, value_name = "DIR", hide = true)]
    man: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(dir) = &cli.man {
        return Ok(dlfm_cli::man::write(Cli::command(), dir)?);
    }
    let (Some(backing), Some(mountpoint)) = (cli.backing, cli.mountpoint) else {
        anyhow::bail!("give the directory to serve and where to mount it");
    };
    let mut client = dlfm_pfs::Client::named(&cli.client).unwrap_or(dlfm_pfs::Client::NONE);
    if let Some(ms) = cli.entry_ttl_ms {
        client.entry_ttl = Duration::from_millis(ms);
    }
    if let Some(ms) = cli.negative_ttl_ms {
        client.negative_ttl = Duration::from_millis(ms);
    }
    let model = dlfm_pfs::Model {
        metadata_latency: Duration::from_micros(cli.latency_us),
        read_latency: Duration::from_micros(cli.read_latency_us),
        threads: cli.threads,
        client,
    };
    dlfm_pfs::clean_stale(&mountpoint);
    let mount = dlfm_pfs::Mount::new(&backing, &mountpoint, &model)?;
    eprintln!(
        "dlfm-pfs: serving {} at {} ({} µs per metadata request, {} thread(s), client cache: entries {} ms, missing names {} ms); unmount with fusermount3 -u {}",
        backing.display(),
        mountpoint.display(),
        cli.latency_us,
        cli.threads,
        client.entry_ttl.as_millis(),
        client.negative_ttl.as_millis(),
        mountpoint.display()
    );
    // Wait until the mount goes away (unmounted from outside).
    let target = std::fs::canonicalize(&mountpoint)?;
    while std::fs::read_to_string("/proc/self/mounts")?
        .lines()
        .any(|l| l.split_whitespace().nth(1) == target.to_str())
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let counts = mount.unmount();
    print!("{}", counts.report());
    if let Some(p) = cli.stats {
        std::fs::write(p, counts.report())?;
    }
    Ok(())
}
