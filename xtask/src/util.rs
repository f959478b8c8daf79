//! Small helpers: where the workspace is, how to start cargo, how to print a step.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result};

/// The workspace root: the parent of this crate's manifest directory.
///
/// Taken from `CARGO_MANIFEST_DIR` at compile time, so `cargo xtask` works the
/// same from any directory inside (or outside) the repository.
pub(crate) fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` if set (made absolute against
/// the current directory, as cargo itself does), else `<workspace>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir()
                    .map(|cwd| cwd.join(&dir))
                    .unwrap_or(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// A `cargo` command run from the workspace root. Uses the cargo that started
/// xtask (`$CARGO`), so `cargo +toolchain xtask ...` stays on that toolchain.
/// `CARGO_TARGET_DIR` is passed on as an absolute path, so children that run
/// in another directory (benches run in their package directory) agree on it.
pub(crate) fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args)
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// The command line of `cmd`, for headers and error messages.
pub(crate) fn display(cmd: &Command) -> String {
    let mut out = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs `cmd` with inherited stdin/stdout/stderr and returns its status.
pub(crate) fn status(cmd: &mut Command) -> Result<ExitStatus> {
    cmd.status()
        .with_context(|| format!("could not start `{}`", display(cmd)))
}

/// Runs `cmd` and captures its stdout as a trimmed string, if it exits 0.
pub(crate) fn output(cmd: &mut Command) -> Result<Option<String>> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    if out.status.success() {
        Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    } else {
        Ok(None)
    }
}

/// Prints a step header: `==> [2/6] fmt: cargo fmt --all --check`.
pub(crate) fn header(index: usize, total: usize, name: &str, what: &str) {
    println!();
    println!("==> [{index}/{total}] {name}: {what}");
}

/// `1.2s`, `3m04s`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}
