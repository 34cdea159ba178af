//! Man pages written from the tools' clap definitions (`make man`, `make
//! install`): each tool takes a hidden `--write-man-pages DIR` that calls
//! [`write`].

use std::path::Path;

/// The hidden option each tool takes to write its man pages.
pub const OPTION: &str = "write-man-pages";

/// Writes `DIR/<name>.1` for `cmd` and `DIR/<name>-<sub>.1` for each of its
/// visible subcommands.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    cmd.build();
    let name = cmd.get_name().to_string();
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let full = format!("{name}-{}", sub.get_name());
        let page = sub.clone().name(full.clone());
        render(page, &dir.join(format!("{full}.1")))?;
    }
    render(cmd, &dir.join(format!("{name}.1")))
}

/// For a tool's `main`: when `--write-man-pages DIR` was given (`dir`),
/// writes `cmd`'s pages and gives the exit code (`tool` names the tool in
/// the error line); None when it was not given.
pub fn write_if_asked(
    dir: Option<&Path>,
    cmd: clap::Command,
    tool: &str,
) -> Option<std::process::ExitCode> {
    let dir = dir?;
    Some(match write(cmd, dir) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: error: cannot write the man pages: {e}");
            std::process::ExitCode::from(2)
        }
    })
}

fn render(cmd: clap::Command, path: &Path) -> std::io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    std::fs::write(path, out)
}
