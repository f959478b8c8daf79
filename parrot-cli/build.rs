//! Picks the templates `parrot new` embeds: the repository's `templates/`
//! (with `uas/`, `uac/` and `agent/`) when present, else the stand-ins under
//! `tests/fixtures/templates` so the CLI builds on a checkout without them.
//! `include_dir!` reads the choice from `PARROT_TEMPLATES_SRC`.

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let manifest = Path::new(&manifest);
    let real = manifest.join("../templates");
    let fixtures = manifest.join("tests/fixtures/templates");
    let complete = ["uas", "uac", "agent"]
        .iter()
        .all(|k| real.join(k).join("cargo-generate.toml").is_file());
    // A directory is scanned recursively for changes; a missing path makes
    // cargo rerun this script on every build, so `templates/` is picked up as
    // soon as it appears.
    println!("cargo:rerun-if-changed=../templates");
    println!("cargo:rerun-if-changed=tests/fixtures/templates");
    let src = if complete {
        real
    } else {
        println!(
            "cargo:warning=templates/uas, uac and agent not found: embedding the test fixtures"
        );
        fixtures
    };
    println!("cargo:rustc-env=PARROT_TEMPLATES_SRC={}", src.display());
}
