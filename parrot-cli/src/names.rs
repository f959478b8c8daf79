//! Validation of package names (like `cargo new`) and of `--module` type names.
//! Every error is one line that says what to do.

/// Rust's keywords, strict and reserved (2024 edition), which cannot name a crate.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Crates every Rust program can already name.
const STD_CRATES: &[&str] = &["core", "std", "alloc", "proc_macro", "proc-macro"];

/// Names cargo gives its own directories under `target/`.
const CARGO_DIRS: &[&str] = &["deps", "examples", "build", "incremental"];

/// Names Windows reserves for devices, whatever the extension or case.
const WINDOWS_RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Types of the prelude a template's code relies on: a handler named like
/// one of them would shadow it.
const PRELUDE_TYPES: &[&str] = &[
    "Option",
    "Some",
    "None",
    "Result",
    "Ok",
    "Err",
    "String",
    "Vec",
    "Box",
    "Default",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "Iterator",
    "Send",
    "Sync",
    "Sized",
    "Copy",
    "Clone",
    "ToString",
    "ToOwned",
    "Into",
    "From",
    "IntoIterator",
];

/// The crate name cargo derives from a package name: `-` becomes `_`.
pub(crate) fn crate_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Checks `name` as `cargo new` would; `suffix` (`server`, `client`) makes the
/// suggested alternative.
pub(crate) fn validate_package_name(name: &str, suffix: &str) -> Result<(), String> {
    let cannot = |why: &str, fix: &str| {
        format!("the name `{name}` cannot be used as a package name: {why}; {fix}")
    };
    let another = || format!("pick another name, e.g. `{name}-{suffix}`");
    if name.is_empty() {
        return Err(format!(
            "the package name cannot be empty; pass one, e.g. `parrot new uas my-{suffix}`"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        let cleaned = suggestion(name, suffix);
        return Err(cannot(
            &format!("invalid character `{}`", shown_char(bad)),
            &format!("use only ASCII letters, digits, `-` and `_`, e.g. `{cleaned}`"),
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(cannot(
            "it starts with a digit",
            &format!("start it with a letter, e.g. `{suffix}-{name}`"),
        ));
    }
    if name == "test" {
        return Err(cannot(
            "it conflicts with Rust's built-in test library",
            &another(),
        ));
    }
    if STD_CRATES.contains(&name) {
        return Err(cannot(
            &format!(
                "it conflicts with Rust's built-in `{}` library",
                crate_name(name)
            ),
            &another(),
        ));
    }
    if KEYWORDS.contains(&name) || KEYWORDS.contains(&crate_name(name).as_str()) {
        return Err(cannot("it is a Rust keyword", &another()));
    }
    if CARGO_DIRS.contains(&name) {
        return Err(cannot(
            "it conflicts with cargo's build directory names",
            &another(),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if WINDOWS_RESERVED.contains(&lower.as_str()) {
        return Err(cannot("it is a reserved file name on Windows", &another()));
    }
    Ok(())
}

/// A character as typed, escaped if invisible.
fn shown_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        c.escape_default().to_string()
    } else {
        c.to_string()
    }
}

/// `name` with every invalid character turned into `-`, trimmed, and never empty.
fn suggestion(name: &str, suffix: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("my-{suffix}")
    } else {
        out
    }
}

/// Checks a `--module` value: a Rust type name in UpperCamelCase, not a keyword
/// and not a prelude type.
pub(crate) fn validate_module(module: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "the module name `{module}` cannot be used: {why}; pass an UpperCamelCase Rust type name, e.g. `--module MyServer`"
        )
    };
    if module.is_empty() {
        return Err(bad("it is empty"));
    }
    if !module.starts_with(|c: char| c.is_ascii_uppercase()) {
        return Err(bad("it must start with an uppercase ASCII letter"));
    }
    if let Some(c) = module.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(bad(&format!(
            "invalid character `{}` (only ASCII letters and digits)",
            shown_char(c)
        )));
    }
    if KEYWORDS.contains(&module) {
        return Err(bad("it is a Rust keyword"));
    }
    if PRELUDE_TYPES.contains(&module) {
        return Err(bad("it would shadow a type of Rust's prelude"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        for ok in ["my-server", "a", "x_1", "Server2", "tests", "std-sip"] {
            assert_eq!(validate_package_name(ok, "server"), Ok(()), "{ok}");
        }
        let err = |n: &str| validate_package_name(n, "server").unwrap_err();
        assert_eq!(
            err("test"),
            "the name `test` cannot be used as a package name: it conflicts with Rust's \
             built-in test library; pick another name, e.g. `test-server`"
        );
        assert!(err("").contains("cannot be empty"));
        assert!(
            err("café").contains("invalid character `é`"),
            "{}",
            err("café")
        );
        assert!(err("my server").contains("e.g. `my-server`"));
        assert!(err("1up").contains("starts with a digit"));
        assert!(err("fn").contains("Rust keyword"));
        assert!(err("async").contains("Rust keyword"));
        assert!(err("proc-macro").contains("built-in `proc_macro` library"));
        assert!(err("std").contains("built-in `std` library"));
        assert!(err("CON").contains("reserved file name on Windows"));
        assert!(err("deps").contains("cargo's build directory"));
    }

    #[test]
    fn modules() {
        for ok in ["MyServer", "Echo", "Ivr2"] {
            assert_eq!(validate_module(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "myServer",
            "My_Server",
            "Self",
            "Option",
            "Ünicode",
            "9Lives",
        ] {
            assert!(validate_module(bad).is_err(), "{bad}");
        }
    }
}
