//! `parrot new uas|uac NAME`: render a template into a fresh project.
//!
//! The project is rendered into a hidden directory next to the destination
//! (same filesystem), `git init` runs there, and only then is it renamed into
//! place: a failure leaves nothing behind.

use std::fs;
use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

use crate::names;
use crate::template::{Template, Var, Vars, render};
use crate::{Kind, Output, Vcs};

/// Everything `parrot new` needs, already parsed by clap.
pub(crate) struct NewOptions {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) path: Option<PathBuf>,
    pub(crate) port: Option<u16>,
    pub(crate) bind: IpAddr,
    pub(crate) module: Option<String>,
    pub(crate) no_media: bool,
    pub(crate) parrot_path: Option<PathBuf>,
    pub(crate) vcs: Option<Vcs>,
    pub(crate) force: bool,
    pub(crate) build: bool,
    pub(crate) templates: Option<PathBuf>,
}

/// The published parrot-core requirement: this CLI's major.minor (`0.1`).
fn published_version() -> String {
    let v = env!("CARGO_PKG_VERSION");
    let mut it = v.split('.');
    match (it.next(), it.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => v.to_owned(),
    }
}

/// The parrot-core next to this CLI's sources, if it still exists.
fn own_core_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parrot-core");
    if dir.join("Cargo.toml").is_file() {
        dir.canonicalize().ok()
    } else {
        None
    }
}

/// Checks `--parrot-path`: a directory whose Cargo.toml is package `parrot-core`.
fn check_core_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let shown = dir.display();
    let manifest = dir.join("Cargo.toml");
    if !dir.is_dir() {
        bail!(
            "--parrot-path `{shown}` is not a directory; point it at the `parrot-core` directory of a Parrot checkout"
        );
    }
    let hint = if dir.join("parrot-core/Cargo.toml").is_file() {
        format!("did you mean `{}`?", dir.join("parrot-core").display())
    } else {
        "point it at the `parrot-core` directory of a Parrot checkout".to_owned()
    };
    let text = fs::read_to_string(&manifest)
        .map_err(|_| anyhow!("--parrot-path `{shown}` has no readable Cargo.toml; {hint}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|_| anyhow!("--parrot-path `{shown}`: its Cargo.toml does not parse; {hint}"))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str());
    match name {
        Some("parrot-core") => dir
            .canonicalize()
            .with_context(|| format!("cannot resolve `{shown}`")),
        Some(other) => {
            bail!("--parrot-path `{shown}` is package `{other}`, not `parrot-core`; {hint}")
        }
        None => bail!("--parrot-path `{shown}` is not a package (no [package] name); {hint}"),
    }
}

/// The right-hand side of `parrot-core = …` in the new project's Cargo.toml.
pub(crate) fn parrot_dep(core_dir: Option<&Path>, features: &[&str]) -> String {
    let feats = features
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    match (core_dir, features.is_empty()) {
        (Some(dir), true) => format!("{{ path = {} }}", toml_str(&dir.display().to_string())),
        (Some(dir), false) => format!(
            "{{ path = {}, features = [{feats}] }}",
            toml_str(&dir.display().to_string())
        ),
        (None, true) => toml_str(&published_version()),
        (None, false) => format!(
            "{{ version = {}, features = [{feats}] }}",
            toml_str(&published_version())
        ),
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The variables handed to the template.
pub(crate) fn variables(opts: &NewOptions, parrot_dep: String) -> Vars {
    let mut vars = Vars::new();
    let s = |v: &str| Var::Str(v.to_owned());
    vars.insert("project-name".into(), s(&opts.name));
    vars.insert("crate_name".into(), s(&names::crate_name(&opts.name)));
    vars.insert("bind".into(), s(&opts.bind.to_string()));
    vars.insert("media".into(), Var::Bool(!opts.no_media));
    vars.insert("parrot_dep".into(), Var::Str(parrot_dep));
    if matches!(opts.kind, Kind::Uas | Kind::Agent) {
        vars.insert("port".into(), s(&opts.port.unwrap_or(5060).to_string()));
    }
    if let Some(m) = &opts.module {
        vars.insert("module".into(), s(m));
    }
    vars
}

pub(crate) fn run(opts: NewOptions, out: Output) -> anyhow::Result<()> {
    let kind = opts.kind.name();
    names::validate_package_name(&opts.name, opts.kind.suffix()).map_err(|e| anyhow!(e))?;
    if let Some(m) = &opts.module {
        names::validate_module(m).map_err(|e| anyhow!(e))?;
    }
    let core_dir = match &opts.parrot_path {
        Some(p) => Some(check_core_dir(p)?),
        None => own_core_dir(),
    };
    let features: &[&str] = if opts.kind == Kind::Uac && !opts.no_media {
        &["device"]
    } else {
        &[]
    };
    let dep = parrot_dep(core_dir.as_deref(), features);
    let mut vars = variables(&opts, dep);

    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let shown_dest = opts
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&opts.name));
    let dest = cwd.join(&shown_dest);
    let existing = check_destination(&dest, &shown_dest, opts.force)?;

    let template = match &opts.templates {
        Some(dir) => Template::from_dir(dir, kind)?,
        None => Template::embedded(kind)?,
    };

    // Where to render: a hidden sibling of the destination.
    let parent = dest
        .parent()
        .ok_or_else(|| anyhow!("cannot create a project at `{}`", shown_dest.display()))?
        .to_path_buf();
    let created_parent = create_parents(&parent, &shown_dest)?;
    let mut staging = Staging::new(&parent, &opts.name, created_parent).map_err(|e| {
        anyhow!(
            "cannot write to `{}`: {e}; choose a writable place with --path DIR",
            parent.display()
        )
    })?;

    let files = render(&template, &mut vars, &staging.dir)?;

    // Like cargo new: no repository by default inside an existing one.
    let repo_probe = if existing { &dest } else { &parent };
    let vcs = match opts.vcs {
        Some(v) => v,
        None if git_available() && !inside_git_work_tree(repo_probe) => Vcs::Git,
        None => Vcs::None,
    };
    if vcs == Vcs::Git {
        init_git(&staging.dir, !dest.join(".git").exists())?;
    }

    if existing {
        merge_into(&staging.dir, &dest)?;
    } else {
        fs::rename(&staging.dir, &dest)
            .with_context(|| format!("cannot move the project into `{}`", shown_dest.display()))?;
    }
    staging.done();

    if out.verbose() {
        for f in &files {
            println!("  created {}", shown_dest.join(f).display());
        }
        if vcs == Vcs::Git {
            println!("  initialized a git repository");
        }
    }
    if !out.quiet() {
        println!(
            "Created {kind} project `{}` in {}",
            opts.name,
            shown_dest.display()
        );
    }
    if opts.build {
        cargo_build(&dest, &shown_dest, out)?;
    }
    if !out.quiet() {
        let cd = shell_quote(&shown_dest.display().to_string());
        println!();
        println!("Next steps:");
        match opts.kind {
            Kind::Uas => println!("  cd {cd} && cargo run"),
            Kind::Agent => println!("  cd {cd} && cargo run -- --echo"),
            Kind::Uac => {
                println!("  cd {cd} && cargo run -- call sip:service@127.0.0.1:5060")
            }
        }
    }
    Ok(())
}

/// Fails on a non-empty destination unless `force`; returns whether it exists.
fn check_destination(dest: &Path, shown: &Path, force: bool) -> anyhow::Result<bool> {
    let shown = shown.display();
    match fs::symlink_metadata(dest) {
        Err(_) => Ok(false),
        Ok(m) if !m.is_dir() => bail!(
            "destination `{shown}` already exists and is not a directory; choose another place with --path DIR"
        ),
        Ok(_) => {
            let mut entries =
                fs::read_dir(dest).with_context(|| format!("cannot read destination `{shown}`"))?;
            if entries.next().is_some() && !force {
                bail!(
                    "destination `{shown}` already exists and is not empty; use --force to generate into it anyway, or choose another place with --path DIR"
                );
            }
            Ok(true)
        }
    }
}

/// Creates the missing ancestors of `parent`; returns the topmost one created,
/// to remove it again on failure.
fn create_parents(parent: &Path, shown: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut top = None;
    let mut p = parent;
    while !p.exists() {
        top = Some(p.to_path_buf());
        match p.parent() {
            Some(up) => p = up,
            None => break,
        }
    }
    if top.is_some() {
        fs::create_dir_all(parent).map_err(|e| {
            let _ = top.as_ref().map(fs::remove_dir_all);
            anyhow!(
                "cannot create `{}`: {e}; choose a writable place with --path DIR",
                shown.display()
            )
        })?;
    }
    Ok(top)
}

/// The hidden directory the project is rendered in; removed unless `done`.
struct Staging {
    dir: PathBuf,
    created_parent: Option<PathBuf>,
    keep: bool,
}

impl Staging {
    fn new(parent: &Path, name: &str, created_parent: Option<PathBuf>) -> std::io::Result<Staging> {
        let pid = std::process::id();
        let mut n = 0u32;
        loop {
            let dir = parent.join(format!(".{name}.parrot-new-{pid}-{n}"));
            match fs::create_dir(&dir) {
                Ok(()) => {
                    return Ok(Staging {
                        dir,
                        created_parent,
                        keep: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => {
                    if let Some(top) = &created_parent {
                        let _ = fs::remove_dir_all(top);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn done(&mut self) {
        self.keep = true;
        let _ = fs::remove_dir_all(&self.dir); // left over after a merge; gone after a rename
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
            if let Some(top) = &self.created_parent {
                let _ = fs::remove_dir_all(top);
            }
        }
    }
}

/// `--force` into an existing directory: checks every path first, then moves
/// files over (replacing files of the same name).
fn merge_into(src: &Path, dest: &Path) -> anyhow::Result<()> {
    fn check(src: &Path, dest: &Path) -> anyhow::Result<()> {
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            let to = dest.join(entry.file_name());
            let src_dir = entry.file_type()?.is_dir();
            match fs::symlink_metadata(&to) {
                Err(_) => {}
                Ok(m) if m.is_dir() && src_dir => check(&entry.path(), &to)?,
                Ok(m) if !m.is_dir() && !src_dir => {}
                Ok(_) => bail!(
                    "cannot generate into `{}`: `{}` is in the way (a file where a directory goes, or the reverse)",
                    dest.display(),
                    to.display()
                ),
            }
        }
        Ok(())
    }
    fn apply(src: &Path, dest: &Path) -> anyhow::Result<()> {
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            let to = dest.join(entry.file_name());
            if entry.file_type()?.is_dir() && to.is_dir() {
                apply(&entry.path(), &to)?;
            } else {
                fs::rename(entry.path(), &to)
                    .with_context(|| format!("cannot write `{}`", to.display()))?;
            }
        }
        Ok(())
    }
    check(src, dest)?;
    apply(src, dest)
}

fn git_available() -> bool {
    Command::new("git")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn inside_git_work_tree(dir: &Path) -> bool {
    Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"true"))
}

/// `git init` (unless the destination already is a repository) and a
/// .gitignore that ignores /target.
fn init_git(dir: &Path, init: bool) -> anyhow::Result<()> {
    if init {
        run_git_init(dir)?;
    }
    add_target_ignore(&dir.join(".gitignore"))
}

fn run_git_init(dir: &Path) -> anyhow::Result<()> {
    let output = Command::new("git")
        .args(["init", "--quiet"])
        .current_dir(dir)
        .output()
        .map_err(|e| anyhow!("cannot run `git init`: {e}; install git or pass --vcs none"))?;
    if !output.status.success() {
        bail!(
            "`git init` failed: {}; pass --vcs none to skip it",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn add_target_ignore(ignore: &Path) -> anyhow::Result<()> {
    let mut text = fs::read_to_string(ignore).unwrap_or_default();
    let has_target = text
        .lines()
        .any(|l| matches!(l.trim(), "/target" | "target" | "target/" | "/target/"));
    if !has_target {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("/target\n");
        fs::write(ignore, text).context("cannot write .gitignore")?;
    }
    Ok(())
}

/// `cargo build` in the new project: a spinner on a terminal, quiet otherwise
/// (everything with -v); cargo's output is shown if it fails.
fn cargo_build(dir: &Path, shown: &Path, out: Output) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").current_dir(dir);
    let failed = |detail: String| {
        anyhow!(
            "the project was created in `{}`, but `cargo build` failed{detail}",
            shown.display()
        )
    };
    if out.verbose() {
        let status = cmd
            .status()
            .map_err(|e| failed(format!(": cannot run cargo: {e}")))?;
        return if status.success() {
            Ok(())
        } else {
            Err(failed(String::new()))
        };
    }
    let spinner = (std::io::stdout().is_terminal() && !out.quiet()).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message("cargo build");
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    });
    let result = cmd.output();
    if let Some(pb) = &spinner {
        pb.finish_and_clear();
    }
    let output = result.map_err(|e| failed(format!(": cannot run cargo: {e}")))?;
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        return Err(failed(String::new()));
    }
    if !out.quiet() {
        println!("Built `{}`", shown.display());
    }
    Ok(())
}

/// Quotes a path for the "next steps" line when a shell would split it.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_lines() {
        assert_eq!(parrot_dep(None, &[]), "\"0.1\"");
        assert_eq!(
            parrot_dep(None, &["device"]),
            "{ version = \"0.1\", features = [\"device\"] }"
        );
        assert_eq!(
            parrot_dep(Some(Path::new("/x/parrot-core")), &["device"]),
            "{ path = \"/x/parrot-core\", features = [\"device\"] }"
        );
        assert_eq!(
            parrot_dep(Some(Path::new("/x/parrot-core")), &[]),
            "{ path = \"/x/parrot-core\" }"
        );
        assert!(own_core_dir().is_some_and(|d| d.is_absolute() && d.ends_with("parrot-core")));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("my-server"), "my-server");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
