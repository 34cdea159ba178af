//! `dlpatch PROGRAM`: writes a copy of PROGRAM's ld.so whose file calls
//! branch to the dlfm wrapper linked into PROGRAM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// Write a patched copy of a program's ld.so for dlfm.
#[derive(Parser)]
#[command(
    name = "dlpatch",
    version,
    after_help = "\
Link the program with the wrapper and name the ld.so copy first:
    cc main.o ... target/release/libdlfm_wrap.a -Wl,--dynamic-linker=$PWD/ld.so -o myapp
then:
    dlpatch myapp          # reads myapp's PT_INTERP ld.so, writes ./ld.so
The copy's openat, read, pread64, newfstatat, mmap, close, access and lseek
call the wrapper, which records (DLFM_OP=write-cache), replays
(DLFM_OP=read-cache) or passes them to the kernel (no DLFM_OP).
Refusals print one line and exit with status 2; nothing is written then."
)]
struct Cli {
    /// The program, linked with target/release/libdlfm_wrap.a.
    program: PathBuf,
    /// Where to write the patched ld.so.
    #[arg(short, long, default_value = "ld.so")]
    output: PathBuf,
    /// The ld.so to patch (default: the one the program's PT_INTERP names,
    /// unless that is the output itself, then the system's).
    #[arg(long, value_name = "PATH")]
    ldso: Option<PathBuf>,
    /// Print the sites without writing anything.
    #[arg(long)]
    dry_run: bool,
}

/// The system's ld.so, used when PT_INTERP names the copy being written.
const SYSTEM_LDSO: &str = "/lib64/ld-linux-x86-64.so.2";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlpatch: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn run(cli: &Cli) -> Result<(), String> {
    let program = read(&cli.program, "the program")?;
    let info = dlfm_elf::check_program(&program).map_err(|e| e.to_string())?;
    let ldso = match (&cli.ldso, &info.interp) {
        (Some(p), _) => p.clone(),
        (None, Some(interp))
            if !same_file(Path::new(interp), &cli.output) && Path::new(interp).exists() =>
        {
            PathBuf::from(interp)
        }
        (None, Some(_)) => PathBuf::from(SYSTEM_LDSO),
        (None, None) => return Err(dlfm_elf::PatchError::NoInterp.to_string()),
    };
    let bytes = read(&ldso, "ld.so")?;
    let patched = dlfm_elf::patch_ldso(&bytes).map_err(|e| e.to_string())?;
    println!(
        "dlpatch: {} (build-id {}) for {} ({}, wrapper entry at {:#x})",
        ldso.display(),
        patched.build_id,
        cli.program.display(),
        if info.pie { "PIE" } else { "non-PIE" },
        info.entry_vaddr
    );
    println!(
        "  {:<11} {:>4}  {:>9} {:>4}  trampoline",
        "site", "nr", "window", "len"
    );
    for s in &patched.sites {
        println!(
            "  {:<11} {:>4}  {:>#9x} {:>4}  {:#x}",
            s.name, s.nr, s.window_vaddr, s.window_len, s.trampoline_vaddr
        );
    }
    if cli.dry_run {
        println!("dry run: nothing written");
        return Ok(());
    }
    write_atomically(&cli.output, &patched.bytes)
        .map_err(|e| format!("cannot write {}: {e}", cli.output.display()))?;
    println!(
        "wrote {} ({} sites patched)",
        cli.output.display(),
        patched.sites.len()
    );
    if let Some(interp) = &info.interp {
        if !same_file(Path::new(interp), &cli.output) {
            println!(
                "note: {} loads through {interp}, not {}: relink with -Wl,--dynamic-linker={}",
                cli.program.display(),
                cli.output.display(),
                absolute(&cli.output).display()
            );
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Whether `a` and `b` name the same file (by path, or by inode if both exist).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => absolute(a) == absolute(b),
    }
}

/// Writes through a temporary file and renames, so a failure never leaves a
/// half-written loader.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".dlpatch-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, path)
}
