//! `dlpatch`: writes a copy of ld.so whose file calls go to the dlfm wrapper,
//! either the one linked into a program or one embedded in the copy itself.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use dlfm_elf::{PatchError, Patched};

/// Write a patched copy of ld.so for dlfm.
#[derive(Parser)]
#[command(
    name = "dlpatch",
    version,
    after_help = "\
A program linked with the wrapper (the wrapper lives in the program):
    cc main.o ... target/release/libdlfm_wrap.a -Wl,--dynamic-linker=$PWD/ld.so -o myapp
    dlpatch myapp                         # writes ./ld.so
Any program, no relinking (the wrapper lives in the ld.so copy):
    dlpatch --embed -o ld.so              # then: ./ld.so /usr/bin/python3 script.py
    dlpatch --embed --program /usr/bin/python3 -o python3.dlfm
                                          # python3.dlfm loads through ./ld.so
The copy's openat, read, pread64, newfstatat (stat, fstat and lstat before
glibc 2.33), mmap, close, access (faccessat on aarch64) and lseek go to the
wrapper, which records (DLFM_OP=write-cache), replays (DLFM_OP=read-cache)
or passes them to the kernel (no DLFM_OP). The sites are found by reading ld.so's code: glibc's
x86_64 and aarch64 loaders (tested: Debian 11-13 and unstable, glibc
2.31-2.43); see --dry-run. For an aarch64 program, build the wrapper with
`cargo build --release --target aarch64-unknown-linux-gnu -p dlfm-wrap` and
name it with --wrapper (or link it into the program).
Refusals print one line and exit with status 2; nothing is written then."
)]
struct Cli {
    /// A program linked with target/release/libdlfm_wrap.a (not with --embed).
    #[arg(required_unless_present_any = ["embed", "man"], conflicts_with = "embed")]
    linked_program: Option<PathBuf>,
    /// Embed the wrapper in the ld.so copy, so no program needs relinking.
    #[arg(long)]
    embed: bool,
    /// With --embed: also write a copy of PROG (to -o) that loads through
    /// the ld.so copy (written to --loader).
    #[arg(long, value_name = "PROG", requires = "embed")]
    program: Option<PathBuf>,
    /// Where to write: the ld.so copy, or with --program the program copy
    /// [default: ./ld.so, or ./PROG.dlfm]
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// With --program: where to write the ld.so copy [default: ld.so beside
    /// the program copy].
    #[arg(long, value_name = "PATH", requires = "program")]
    loader: Option<PathBuf>,
    /// The ld.so to patch [default: the program's PT_INTERP, else the
    /// system's].
    #[arg(long, value_name = "PATH")]
    ldso: Option<PathBuf>,
    /// The wrapper archive to embed [default: libdlfm_wrap.a beside dlpatch,
    /// else in ../lib].
    #[arg(long, value_name = "PATH", requires = "embed")]
    wrapper: Option<PathBuf>,
    /// Print the sites without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Write the man pages into DIR and exit.
    #[arg(long = dlfm_cli::man::OPTION, value_name = "DIR", hide = true)]
    man: Option<PathBuf>,
}

/// The system's ld.so.
const SYSTEM_LDSO: &str = "/lib64/ld-linux-x86-64.so.2";

fn main() -> ExitCode {
    dlfm_cli::reset_sigpipe();
    let cli = Cli::parse();
    if let Some(code) = dlfm_cli::man::write_if_asked(cli.man.as_deref(), Cli::command(), "dlpatch")
    {
        return code;
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlpatch: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn run(cli: &Cli) -> Result<()> {
    let program_path = cli.linked_program.as_ref().or(cli.program.as_ref());
    let program = program_path.map(|p| read(p, "the program")).transpose()?;
    let interp = match (&program, cli.embed) {
        (Some(bytes), false) => dlfm_elf::check_program(bytes)?.interp,
        (Some(bytes), true) => dlfm_elf::program_interp(bytes)?,
        (None, _) => None,
    };
    let output = match (&cli.output, &cli.program) {
        (Some(o), _) => o.clone(),
        (None, Some(p)) => PathBuf::from(format!(
            "{}.dlfm",
            p.file_name()
                .map_or("program".into(), |n| n.to_string_lossy())
        )),
        (None, None) => PathBuf::from("ld.so"),
    };
    let loader = match &cli.program {
        Some(_) => cli
            .loader
            .clone()
            .unwrap_or_else(|| output.with_file_name("ld.so")),
        None => output.clone(),
    };
    if cli.program.is_some() && absolute(&output) == absolute(&loader) {
        bail!(
            "the program copy and the ld.so copy would both be {}: name the program copy with -o \
             (e.g. -o python3.dlfm) or the loader with --loader",
            output.display()
        );
    }
    let ldso = match (&cli.ldso, &interp) {
        (Some(p), _) => p.clone(),
        (None, Some(i)) if Path::new(i).exists() && !same_file(Path::new(i), &loader) => {
            PathBuf::from(i)
        }
        _ => PathBuf::from(SYSTEM_LDSO),
    };
    if !cli.dry_run {
        destination_is_writable(&loader)?;
        if cli.program.is_some() {
            destination_is_writable(&output)?;
        }
    }
    let bytes = read(&ldso, "ld.so")?;
    let patched = if cli.embed {
        let wrapper = cli.wrapper.clone().unwrap_or_else(default_wrapper);
        let archive = read(&wrapper, "the wrapper archive")?;
        dlfm_elf::patch_ldso_embedded(&bytes, &archive)
    } else {
        dlfm_elf::patch_ldso(&bytes)
    };
    let patched = patched?;
    if let Some(bytes) = &program {
        let arch = dlfm_elf::arch_of(bytes)?;
        if arch != patched.arch {
            return Err(PatchError::ArchMismatch {
                program: arch.name(),
                ldso: patched.arch.name(),
            }
            .into());
        }
    }
    let program_copy = match (&cli.program, &program) {
        (Some(original), Some(bytes)) => {
            origin_stays_the_same(original, &output, bytes)?;
            let loader_abs = absolute(&loader);
            let name = loader_abs
                .to_str()
                .context("the loader's path is not UTF-8")?;
            Some(dlfm_elf::with_interp(bytes, name)?)
        }
        _ => None,
    };
    if cli.dry_run {
        report(cli, &ldso, &patched, program_path);
        println!("dry run: nothing written");
        return Ok(());
    }
    // Both files are written to temporary names first and renamed only when
    // both are complete: a failure leaves neither behind.
    let loader_tmp = write_temporary(&loader, &patched.bytes)?;
    let copy_tmp = match &program_copy {
        Some(copy) => match write_temporary(&output, copy) {
            Ok(tmp) => Some(tmp),
            Err(e) => {
                let _ = std::fs::remove_file(&loader_tmp);
                return Err(e);
            }
        },
        None => None,
    };
    let renamed = std::fs::rename(&loader_tmp, &loader)
        .with_context(|| format!("cannot write {}", loader.display()))
        .and_then(|()| match &copy_tmp {
            Some(tmp) => std::fs::rename(tmp, &output)
                .with_context(|| format!("cannot write {}", output.display())),
            None => Ok(()),
        });
    if let Err(e) = renamed {
        for tmp in [Some(&loader_tmp), copy_tmp.as_ref()].into_iter().flatten() {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    report(cli, &ldso, &patched, program_path);
    println!(
        "wrote {} ({} sites patched)",
        loader.display(),
        patched.sites.len()
    );
    if program_copy.is_some() {
        println!(
            "wrote {} (loads through {})",
            output.display(),
            absolute(&loader).display()
        );
    } else if let Some(i) = interp.filter(|i| !cli.embed && !same_file(Path::new(i), &loader)) {
        println!(
            "note: the program loads through {i}, not {}: relink it with -Wl,--dynamic-linker={}",
            loader.display(),
            absolute(&loader).display()
        );
    }
    Ok(())
}

fn report(cli: &Cli, ldso: &Path, p: &Patched, program: Option<&PathBuf>) {
    let what = match (cli.embed, program) {
        (true, _) => format!(
            "wrapper embedded (entry {:#x})",
            p.embedded_entry.unwrap_or(0)
        ),
        (false, Some(prog)) => format!("for {}", prog.display()),
        (false, None) => String::new(),
    };
    println!(
        "dlpatch: {} (build-id {}), {what}",
        ldso.display(),
        p.build_id
    );
    println!(
        "  {:<11} {:>4}  {:>9} {:>4}  trampoline",
        "site", "nr", "window", "len"
    );
    for s in &p.sites {
        println!(
            "  {:<11} {:>4}  {:>#9x} {:>4}  {:#x}",
            s.name, s.nr, s.window_vaddr, s.window_len, s.trampoline_vaddr
        );
    }
    left_alone(p.others, &p.unknown);
}

/// The report's last line: the system calls left alone.
fn left_alone(others: usize, unknown: &[u64]) {
    let unknown: Vec<String> = unknown.iter().map(|a| format!("{a:#x}")).collect();
    println!(
        "  left alone: {} system calls of other kinds, {} whose number the code does not show{}",
        others,
        unknown.len(),
        if unknown.is_empty() {
            String::new()
        } else {
            format!(" ({})", unknown.join(", "))
        }
    );
}

/// libdlfm_wrap.a beside this executable (both live in target/release)
/// or in `../lib` (installed).
fn default_wrapper() -> PathBuf {
    dlfm_cli::install::library(dlfm_cli::install::WRAPPER_ARCHIVE)
}

/// `p` made absolute, with its directory resolved (no `..` left in what
/// goes into PT_INTERP).
fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (
        abs.parent().and_then(|d| d.canonicalize().ok()),
        abs.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => abs,
    }
}

/// Whether `a` and `b` name the same file (by inode if both exist).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => absolute(a) == absolute(b),
    }
}

/// Refuses a program copy in another directory than the original when the
/// program's RUNPATH or RPATH names `$ORIGIN`: ld.so would compute `$ORIGIN`
/// from the copy's directory and miss the program's libraries.
fn origin_stays_the_same(original: &Path, copy: &Path, bytes: &[u8]) -> Result<()> {
    let uses = dlfm_elf::origin_search_paths(bytes);
    let dir_of = |p: &Path| absolute(p).parent().map(Path::to_path_buf);
    if uses.is_empty() || dir_of(original) == dir_of(copy) {
        return Ok(());
    }
    bail!(
        "{} finds libraries through $ORIGIN ({}), which a copy in another directory would change: \
         write the copy beside it (-o {}/NAME) or run the loader explicitly (dlpatch --embed -o ld.so; ./ld.so {})",
        original.display(),
        uses.join(":"),
        dir_of(original).unwrap_or_default().display(),
        original.display()
    )
}

/// Refuses a destination that exists but is not a regular file (a
/// directory, most often), before anything is written.
fn destination_is_writable(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!(
            "cannot write {}: it is a directory; name the file to write (-o, --loader)",
            path.display()
        ),
        Ok(m) if !m.is_file() => bail!("cannot write {}: it is not a regular file", path.display()),
        _ => Ok(()),
    }
}

/// Writes `bytes` (executable) to a temporary name beside `path` and returns
/// that name; on failure nothing is left behind. The caller renames it over
/// `path` (a new file, never one rewritten in place: a running program may
/// have the old one mapped).
fn write_temporary(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".dlpatch-tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)));
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(anyhow::Error::new(e).context(format!("cannot write {}", path.display())))
        }
    }
}
