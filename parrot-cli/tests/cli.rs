//! The `parrot` binary end to end: rendered file trees of the fixture
//! templates (`tests/fixtures/templates`, passed with the hidden
//! `--templates`), every refused input, `parrot devices`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

fn core_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../parrot-core")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

fn parrot(cwd: &Path) -> Command {
    let mut cmd = Command::cargo_bin("parrot").unwrap();
    cmd.current_dir(cwd);
    cmd
}

/// `parrot new ARGS --templates fixtures --vcs none` in a fresh directory.
fn generate(args: &[&str]) -> (tempfile::TempDir, assert_cmd::assert::Assert) {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let assert = parrot(tmp.path())
        .arg("new")
        .args(args)
        .arg("--templates")
        .arg(&fixtures)
        .args(["--vcs", "none"])
        .assert();
    (tmp, assert)
}

/// Every file under `dir`, sorted, `/`-separated, `.git` left out.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ".git" {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

/// Nothing but what the test itself put there.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn uas_default_tree() {
    let (tmp, assert) = generate(&["uas", "my-server"]);
    assert
        .success()
        .stdout(predicate::str::contains("cd my-server && cargo run\n"));
    let dir = tmp.path().join("my-server");
    assert_eq!(
        tree(&dir),
        [
            "Cargo.toml",
            "README.md",
            "assets/welcome.wav",
            "docs/my_server.md",
            "src/main.rs",
            "src/media.rs"
        ]
    );
    assert_eq!(
        read(&dir, "Cargo.toml"),
        format!(
            "[package]\nname = \"my-server\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\nparrot-core = {{ path = \"{}\" }}\n",
            core_dir()
        )
    );
    assert_eq!(
        read(&dir, "src/main.rs"),
        "//! my-server: a SIP server (my_server).\n\nmod media;\n\nstruct Server;\n\n\
         fn main() {\n    let _server = Server;\n    println!(\"listening on 0.0.0.0:5060\");\n}\n"
    );
    assert_eq!(
        read(&dir, "README.md"),
        "# my-server\n\n`cargo run`, then call sip:service@0.0.0.0:5060.\n"
    );
    assert_eq!(read(&dir, "docs/my_server.md"), "# my-server\n");
    // Binary: byte for byte, although it holds `{{` and invalid UTF-8.
    assert_eq!(
        fs::read(dir.join("assets/welcome.wav")).unwrap(),
        fs::read(fixtures().join("uas/assets/welcome.wav")).unwrap()
    );
    // Only the project: no staging directory left next to it.
    assert_eq!(entries(tmp.path()), ["my-server"]);
}

#[test]
fn uas_options_tree() {
    let (tmp, assert) = generate(&[
        "uas",
        "pbx_2",
        "--no-media",
        "--port",
        "5080",
        "--bind",
        "127.0.0.1",
        "--module",
        "Pbx",
    ]);
    assert.success();
    let dir = tmp.path().join("pbx_2");
    assert_eq!(
        tree(&dir),
        ["Cargo.toml", "README.md", "docs/pbx_2.md", "src/main.rs"]
    );
    assert_eq!(
        read(&dir, "src/main.rs"),
        "//! pbx_2: a SIP server (pbx_2).\n\nstruct Pbx;\n\n\
         fn main() {\n    let _server = Pbx;\n    println!(\"listening on 127.0.0.1:5080\");\n}\n"
    );
    assert!(read(&dir, "README.md").contains("sip:service@127.0.0.1:5080"));
}

#[test]
fn uac_default_and_no_media_trees() {
    let (tmp, assert) = generate(&["uac", "my-client"]);
    assert.success().stdout(predicate::str::contains(
        "cd my-client && cargo run -- call sip:service@127.0.0.1:5060\n",
    ));
    let dir = tmp.path().join("my-client");
    assert_eq!(tree(&dir), ["Cargo.toml", "assets/ring.wav", "src/main.rs"]);
    assert!(read(&dir, "Cargo.toml").ends_with(&format!(
        "parrot-core = {{ path = \"{}\", features = [\"device\"] }}\n",
        core_dir()
    )));
    assert_eq!(
        read(&dir, "src/main.rs"),
        "//! my-client: a SIP client.\nstruct Caller;\n\nfn main() {\n    let _client = Caller;\n    \
         let _ring = include_bytes!(\"../assets/ring.wav\");\n    println!(\"calling from 0.0.0.0\");\n}\n"
    );
    assert_eq!(
        fs::read(dir.join("assets/ring.wav")).unwrap(),
        fs::read(fixtures().join("uac/assets/ring.wav")).unwrap()
    );

    let (tmp, assert) = generate(&["uac", "probe", "--no-media", "--module", "Probe"]);
    assert.success();
    let dir = tmp.path().join("probe");
    assert_eq!(tree(&dir), ["Cargo.toml", "src/main.rs"]);
    assert!(
        read(&dir, "Cargo.toml")
            .ends_with(&format!("parrot-core = {{ path = \"{}\" }}\n", core_dir()))
    );
    assert_eq!(
        read(&dir, "src/main.rs"),
        "//! probe: a SIP client.\nstruct Probe;\n\nfn main() {\n    let _client = Probe;\n    \
         println!(\"calling from 0.0.0.0\");\n}\n"
    );
}

#[test]
fn parrot_path_and_custom_destination() {
    let (tmp, assert) = generate(&[
        "uac",
        "c",
        "--path",
        "deep/er/c-dir",
        "--parrot-path",
        &format!("{}/../parrot-core", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert
        .success()
        .stdout(predicate::str::contains("cd deep/er/c-dir && cargo run"));
    let dir = tmp.path().join("deep/er/c-dir");
    assert!(read(&dir, "Cargo.toml").contains(&format!("path = \"{}\"", core_dir())));
    assert_eq!(entries(&tmp.path().join("deep/er")), ["c-dir"]);
}

#[test]
fn quiet_and_verbose() {
    let (_tmp, assert) = generate(&["uas", "q", "-q"]);
    assert.success().stdout("");
    let (_tmp, assert) = generate(&["uas", "v", "-v"]);
    assert
        .success()
        .stdout(predicate::str::contains("created v/src/main.rs"));
}

#[test]
fn vcs_git_initializes_a_repository() {
    let tmp = tempfile::tempdir().unwrap();
    parrot(tmp.path())
        .args(["new", "uas", "g", "--vcs", "git", "--templates"])
        .arg(fixtures())
        .assert()
        .success();
    let dir = tmp.path().join("g");
    assert!(dir.join(".git").is_dir());
    assert_eq!(read(&dir, ".gitignore"), "/target\n");
    assert_eq!(entries(tmp.path()), ["g"]);
}

#[test]
fn force_generates_into_a_non_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("f");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("keep.txt"), "mine").unwrap();
    let run = |force: bool| {
        let mut cmd = parrot(tmp.path());
        cmd.args(["new", "uas", "f", "--vcs", "none", "--templates"])
            .arg(fixtures());
        if force {
            cmd.arg("--force");
        }
        cmd.assert()
    };
    run(false).code(1).stderr(
        "error: destination `f` already exists and is not empty; use --force to generate \
         into it anyway, or choose another place with --path DIR\n",
    );
    assert_eq!(entries(&dir), ["keep.txt"]);
    run(true).success();
    assert_eq!(read(&dir, "keep.txt"), "mine");
    assert!(dir.join("src/main.rs").is_file());
    assert_eq!(entries(tmp.path()), ["f"]);

    // An empty existing directory needs no --force.
    let empty = tmp.path().join("e");
    fs::create_dir(&empty).unwrap();
    parrot(tmp.path())
        .args(["new", "uas", "e", "--vcs", "none", "--templates"])
        .arg(fixtures())
        .assert()
        .success();
    assert!(empty.join("Cargo.toml").is_file());
}

/// A refused `parrot new`: the exit code, the stderr's first line, and an
/// untouched working directory.
fn refused(args: &[&str], code: i32, first_line: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = parrot(tmp.path())
        .arg("new")
        .args(args)
        .arg("--templates")
        .arg(fixtures())
        .assert()
        .code(code)
        .stdout("")
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.lines().next(),
        Some(first_line),
        "{args:?}: {stderr}"
    );
    if code == 1 {
        assert_eq!(stderr.lines().count(), 1, "one line only: {stderr}");
    }
    assert!(
        entries(tmp.path()).is_empty(),
        "{args:?} left {:?}",
        entries(tmp.path())
    );
}

#[test]
fn bad_names() {
    refused(
        &["uas", "test"],
        1,
        "error: the name `test` cannot be used as a package name: it conflicts with Rust's \
         built-in test library; pick another name, e.g. `test-server`",
    );
    refused(
        &["uas", ""],
        1,
        "error: the package name cannot be empty; pass one, e.g. `parrot new uas my-server`",
    );
    refused(
        &["uac", "my.client"],
        1,
        "error: the name `my.client` cannot be used as a package name: invalid character `.`; \
         use only ASCII letters, digits, `-` and `_`, e.g. `my-client`",
    );
    refused(
        &["uas", "2fast"],
        1,
        "error: the name `2fast` cannot be used as a package name: it starts with a digit; \
         start it with a letter, e.g. `server-2fast`",
    );
    refused(
        &["uas", "match"],
        1,
        "error: the name `match` cannot be used as a package name: it is a Rust keyword; \
         pick another name, e.g. `match-server`",
    );
    refused(
        &["uac", "std"],
        1,
        "error: the name `std` cannot be used as a package name: it conflicts with Rust's \
         built-in `std` library; pick another name, e.g. `std-client`",
    );
    refused(
        &["uas", "proc-macro"],
        1,
        "error: the name `proc-macro` cannot be used as a package name: it conflicts with \
         Rust's built-in `proc_macro` library; pick another name, e.g. `proc-macro-server`",
    );
    for name in ["core", "alloc", "proc_macro"] {
        refused(
            &["uas", name],
            1,
            &format!(
                "error: the name `{name}` cannot be used as a package name: it conflicts with \
                 Rust's built-in `{name}` library; pick another name, e.g. `{name}-server`"
            ),
        );
    }
    for name in ["con", "AUX", "nul", "lpt1"] {
        refused(
            &["uas", name],
            1,
            &format!(
                "error: the name `{name}` cannot be used as a package name: it is a reserved \
                 file name on Windows; pick another name, e.g. `{name}-server`"
            ),
        );
    }
}

#[test]
fn bad_options() {
    refused(&["sbc", "x"], 2, "error: invalid value 'sbc' for '<KIND>'");
    let tmp = tempfile::tempdir().unwrap();
    parrot(tmp.path())
        .args(["new", "sbc", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "[possible values: uas, uac, agent]",
        ));
    refused(
        &["uas", "x", "--port", "0"],
        2,
        "error: invalid value '0' for '--port <PORT>': 0 is not in 1..=65535",
    );
    refused(
        &["uas", "x", "--port", "65536"],
        2,
        "error: invalid value '65536' for '--port <PORT>': 65536 is not in 1..=65535",
    );
    refused(
        &["uac", "x", "--port", "5080"],
        2,
        "error: --port applies to `parrot new uas` only: a client takes its port from the URI it calls",
    );
    refused(
        &["uas", "x", "--bind", "localhost"],
        2,
        "error: invalid value 'localhost' for '--bind <IP>': invalid IP address syntax",
    );
    refused(
        &["uas", "x", "--vcs", "svn"],
        2,
        "error: invalid value 'svn' for '--vcs <VCS>'",
    );
    refused(
        &["uas"],
        2,
        "error: the following required arguments were not provided:",
    );
    for (module, why) in [
        ("lower", "it must start with an uppercase ASCII letter"),
        (
            "My_Server",
            "invalid character `_` (only ASCII letters and digits)",
        ),
        ("Self", "it is a Rust keyword"),
        ("Option", "it would shadow a type of Rust's prelude"),
    ] {
        refused(
            &["uas", "x", "--module", module],
            1,
            &format!(
                "error: the module name `{module}` cannot be used: {why}; pass an UpperCamelCase \
                 Rust type name, e.g. `--module MyServer`"
            ),
        );
    }
}

#[test]
fn bad_parrot_path() {
    let tmp = tempfile::tempdir().unwrap();
    let not_core = tmp.path().join("other");
    fs::create_dir(&not_core).unwrap();
    fs::write(
        not_core.join("Cargo.toml"),
        "[package]\nname = \"other\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let shown = not_core.display().to_string();
    refused(
        &["uas", "x", "--parrot-path", &shown],
        1,
        &format!(
            "error: --parrot-path `{shown}` is package `other`, not `parrot-core`; point it at \
             the `parrot-core` directory of a Parrot checkout"
        ),
    );
    let missing = tmp.path().join("missing").display().to_string();
    refused(
        &["uas", "x", "--parrot-path", &missing],
        1,
        &format!(
            "error: --parrot-path `{missing}` is not a directory; point it at the `parrot-core` \
             directory of a Parrot checkout"
        ),
    );
    let repo_root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    refused(
        &["uas", "x", "--parrot-path", &repo_root],
        1,
        &format!(
            "error: --parrot-path `{repo_root}` is not a package (no [package] name); did you \
             mean `{repo_root}/parrot-core`?"
        ),
    );
}

#[test]
fn unwritable_destination() {
    // A regular file where a directory should be: fails even for root.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("file"), "").unwrap();
    let out = parrot(tmp.path())
        .args([
            "new",
            "uas",
            "x",
            "--path",
            "file/x",
            "--vcs",
            "none",
            "--templates",
        ])
        .arg(fixtures())
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "error: cannot write to `{}`: ",
            tmp.path().join("file").display()
        )) && stderr.ends_with("; choose a writable place with --path DIR\n"),
        "{stderr}"
    );
    assert_eq!(entries(tmp.path()), ["file"]);

    let out = parrot(tmp.path())
        .args(["new", "uas", "x", "--path", "file", "--templates"])
        .arg(fixtures())
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: destination `file` already exists and is not a directory; choose another \
         place with --path DIR\n"
    );
}

#[test]
fn a_broken_template_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let templates = tmp.path().join("templates");
    fs::create_dir_all(templates.join("uas/src")).unwrap();
    fs::write(templates.join("uas/cargo-generate.toml"), "").unwrap();
    fs::write(
        templates.join("uas/Cargo.toml"),
        "name = \"{{project-name}}\"\n",
    )
    .unwrap();
    fs::write(templates.join("uas/src/main.rs"), "{{ nope }}\n").unwrap();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let out = parrot(&work)
        .args(["new", "uas", "x", "--path", "a/b/x", "--templates"])
        .arg(&templates)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: template file `src/main.rs`: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(entries(&work).is_empty(), "{:?}", entries(&work));
}

#[test]
fn embedded_templates_render() {
    // Whatever is embedded (templates/ or the fixtures), it renders.
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["uas", "uac"] {
        parrot(tmp.path())
            .args(["new", kind, &format!("e-{kind}"), "--vcs", "none", "-q"])
            .assert()
            .success()
            .stdout("");
        let dir = tmp.path().join(format!("e-{kind}"));
        assert!(dir.join("Cargo.toml").is_file(), "{kind}");
        assert!(!dir.join("cargo-generate.toml").exists(), "{kind}");
        assert!(read(&dir, "Cargo.toml").contains(&format!("name = \"e-{kind}\"")));
    }
}

#[test]
fn help_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    parrot(tmp.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("parrot new uas my-server"))
        .stdout(predicate::str::contains("parrot devices --json"));
    parrot(tmp.path())
        .args(["new", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--no-media"))
        .stdout(predicate::str::contains("--templates").not());
    parrot(tmp.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("parrot {}\n", env!("CARGO_PKG_VERSION")));
    parrot(tmp.path()).assert().code(2);
    parrot(tmp.path())
        .args(["-v", "-q", "devices"])
        .assert()
        .code(2);
}

#[test]
fn devices_lists_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    parrot(tmp.path()).arg("devices").assert().success();
    let out = parrot(tmp.path())
        .args(["devices", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.starts_with("{\"hosts\":[") && json.ends_with("]}\n"),
        "{json}"
    );
}

/// alsa-lib prints its configuration errors (`ALSA lib confmisc.c:855:(parse_card)
/// cannot find card '0'`...) to stderr while cpal probes a PCM that has no card
/// behind it; `parrot devices` keeps them off stderr. The `.asoundrc` makes
/// that happen on any machine: its default PCM is on a card that cannot exist
/// (alsa-lib numbers cards 0-31).
#[test]
fn devices_prints_no_alsa_noise() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".asoundrc"),
        "pcm.!default \"sysdefault:97\"\n",
    )
    .unwrap();
    let plain = tempfile::tempdir().unwrap();
    // This machine's own configuration, and one whose default card is missing.
    for home in [None, Some(home.path())] {
        for json in [false, true] {
            let mut cmd = parrot(home.unwrap_or(plain.path()));
            if let Some(h) = home {
                cmd.env("HOME", h);
            }
            cmd.arg("devices");
            if json {
                cmd.arg("--json");
            }
            let out = cmd.assert().success().get_output().clone();
            let stdout = String::from_utf8(out.stdout).unwrap();
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert!(
                !stderr.contains("ALSA lib"),
                "home {home:?}, json {json}: stderr has alsa-lib's messages:\n{stderr}"
            );
            if json {
                assert!(stdout.starts_with("{\"hosts\":["), "{stdout}");
            } else {
                assert!(
                    stdout.contains("devices") || stdout.contains("no audio"),
                    "{stdout}"
                );
            }
        }
    }
}

/// Generates a uac and builds it against this repository's parrot-core: slow
/// (a full build of parrot-core in a fresh target directory).
#[test]
#[ignore = "slow: builds parrot-core in a fresh project"]
fn build_a_generated_project() {
    let tmp = tempfile::tempdir().unwrap();
    parrot(tmp.path())
        .args([
            "new",
            "uas",
            "built",
            "--vcs",
            "none",
            "--no-media",
            "--build",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("Built `built`"));
    assert!(tmp.path().join("built/target").is_dir());
}

/// `parrot devices` with an `.asoundrc` that defines a `file`-backed default
/// PCM (no sound card needed): the default device is listed with its configs.
#[test]
fn devices_lists_an_asoundrc_file_device() {
    let home = tempfile::tempdir().unwrap();
    let wav = home.path().join("played.wav");
    std::fs::write(
        home.path().join(".asoundrc"),
        format!(
            "pcm.!default {{\n    type plug\n    slave.pcm \"parrot_file\"\n}}\n\
             pcm.parrot_file {{\n    type file\n    slave.pcm \"null\"\n    file \"{}\"\n    format \"wav\"\n}}\n",
            wav.display()
        ),
    )
    .unwrap();
    let out = parrot(home.path())
        .env("HOME", home.path())
        .args(["devices", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let json = String::from_utf8(out.stdout).unwrap();
    // The file device is listed by its ALSA name, and the default (which has
    // no configuration without a sound card) now opens: its configs are read.
    assert!(json.contains("\"id\":\"parrot_file\""), "{json}");
    let default = json
        .find("\"id\":\"default\"")
        .expect("the default device is listed");
    let entry = &json[default
        ..json[default..]
            .find('}')
            .map_or(json.len(), |e| default + e)];
    assert!(
        entry.contains("\"min_rate\""),
        "the default device's configs are read: {entry}"
    );
}
