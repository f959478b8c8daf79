//! cargo-generate style templates: loading (embedded or from a directory),
//! `cargo-generate.toml` (placeholders, `[template] ignore/include/exclude`,
//! `[conditional.'EXPR'] ignore`), and rendering with liquid.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use include_dir::{Dir, include_dir};

/// The templates compiled into the binary (see `build.rs`).
static EMBEDDED: Dir<'static> = include_dir!("$PARROT_TEMPLATES_SRC");

/// The template's own configuration; never copied into a project.
pub(crate) const CONFIG_FILE: &str = "cargo-generate.toml";

/// Extensions copied byte for byte, never rendered.
const BINARY_EXTENSIONS: &[&str] = &[
    "wav", "raw", "pcm", "ulaw", "alaw", "au", "mp3", "ogg", "opus", "flac", "png", "jpg", "jpeg",
    "gif", "ico", "pdf", "zip", "gz", "tar", "der", "p12", "bin",
];

/// A value passed to the templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Str(String),
    Bool(bool),
}

/// The template's variables by name.
pub(crate) type Vars = BTreeMap<String, Var>;

/// One template: its files, with `/`-separated paths relative to its root.
pub(crate) struct Template {
    pub(crate) files: Vec<(String, Vec<u8>)>,
}

impl Template {
    /// The template `kind` compiled into the binary.
    pub(crate) fn embedded(kind: &str) -> anyhow::Result<Template> {
        let dir = EMBEDDED
            .get_dir(kind)
            .ok_or_else(|| anyhow!("this parrot was built without the `{kind}` template"))?;
        let mut files = Vec::new();
        collect_embedded(dir, kind, &mut files);
        files.sort();
        Ok(Template { files })
    }

    /// The template `kind` read from `root/kind` (`--templates`).
    pub(crate) fn from_dir(root: &Path, kind: &str) -> anyhow::Result<Template> {
        let base = root.join(kind);
        if !base.is_dir() {
            bail!("no `{kind}` template in `{}`", root.display());
        }
        let mut files = Vec::new();
        collect_dir(&base, "", &mut files)?;
        files.sort();
        Ok(Template { files })
    }
}

fn collect_embedded(dir: &Dir<'static>, kind: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for f in dir.files() {
        let path = f.path().to_string_lossy().replace('\\', "/");
        let rel = path
            .strip_prefix(kind)
            .map(|p| p.trim_start_matches('/'))
            .unwrap_or(&path);
        out.push((rel.to_owned(), f.contents().to_vec()));
    }
    for d in dir.dirs() {
        collect_embedded(d, kind, out);
    }
}

fn collect_dir(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        if path.is_dir() {
            collect_dir(&path, &rel, out)?;
        } else {
            let bytes =
                fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

/// Placeholder name → default, in file order.
type Placeholders = Vec<(String, Option<Var>)>;

/// What `cargo-generate.toml` says.
#[derive(Debug, Default)]
struct Config {
    ignore: Vec<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    placeholders: Placeholders,
    /// Condition → (files to ignore, placeholders it adds).
    conditionals: Vec<(String, Vec<String>, Placeholders)>,
}

fn parse_config(text: &str) -> anyhow::Result<Config> {
    let table: toml::Table = text.parse().context("cannot parse cargo-generate.toml")?;
    let mut config = Config::default();
    if let Some(t) = table.get("template").and_then(|v| v.as_table()) {
        config.ignore = strings(t.get("ignore"), "template.ignore")?;
        config.include = strings(t.get("include"), "template.include")?;
        config.exclude = strings(t.get("exclude"), "template.exclude")?;
    }
    if let Some(p) = table.get("placeholders") {
        config.placeholders = placeholders(p, "placeholders")?;
    }
    if let Some(c) = table.get("conditional").and_then(|v| v.as_table()) {
        for (expr, body) in c {
            let ignore = strings(body.get("ignore"), &format!("conditional.'{expr}'.ignore"))?;
            let extra = match body.get("placeholders") {
                Some(p) => placeholders(p, &format!("conditional.'{expr}'.placeholders"))?,
                None => Vec::new(),
            };
            config.conditionals.push((expr.clone(), ignore, extra));
        }
    }
    Ok(config)
}

fn strings(v: Option<&toml::Value>, what: &str) -> anyhow::Result<Vec<String>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let arr = v
        .as_array()
        .ok_or_else(|| anyhow!("cargo-generate.toml: `{what}` must be an array of strings"))?;
    arr.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("cargo-generate.toml: `{what}` must be an array of strings"))
        })
        .collect()
}

fn placeholders(v: &toml::Value, what: &str) -> anyhow::Result<Placeholders> {
    let t = v
        .as_table()
        .ok_or_else(|| anyhow!("cargo-generate.toml: `{what}` must be a table"))?;
    let mut out = Vec::new();
    for (name, p) in t {
        let kind = p.get("type").and_then(|t| t.as_str()).unwrap_or("string");
        let default = match (kind, p.get("default")) {
            (_, None) => None,
            ("bool", Some(toml::Value::Boolean(b))) => Some(Var::Bool(*b)),
            ("bool", Some(other)) => bail!(
                "cargo-generate.toml: placeholder `{name}` is a bool but its default is `{other}`"
            ),
            (_, Some(toml::Value::String(s))) => Some(Var::Str(s.clone())),
            (_, Some(other)) => Some(Var::Str(other.to_string())),
        };
        out.push((name.clone(), default));
    }
    Ok(out)
}

/// Renders `template` with `vars` into `out` (an existing, empty directory).
/// Placeholders the caller did not set take the template's default; `vars`
/// gains them. Returns the written paths, sorted.
pub(crate) fn render(
    template: &Template,
    vars: &mut Vars,
    out: &Path,
) -> anyhow::Result<Vec<String>> {
    let config = match template.files.iter().find(|(p, _)| p == CONFIG_FILE) {
        Some((_, bytes)) => {
            parse_config(std::str::from_utf8(bytes).context("cargo-generate.toml is not UTF-8")?)?
        }
        None => Config::default(),
    };
    fill_defaults(vars, &config.placeholders)?;
    let mut ignore = config.ignore.clone();
    for (expr, files, extra) in &config.conditionals {
        if eval(expr, vars)? {
            ignore.extend(files.iter().cloned());
            fill_defaults(vars, extra)?;
        }
    }

    let parser = liquid::ParserBuilder::with_stdlib()
        .build()
        .context("cannot build the liquid parser")?;
    let globals = globals(vars);
    let render_text = |what: &str, text: &str| -> anyhow::Result<String> {
        let tpl = parser
            .parse(text)
            .map_err(|e| anyhow!("template {what}: {}", one_line(&e.to_string())))?;
        tpl.render(&globals)
            .map_err(|e| anyhow!("template {what}: {}", one_line(&e.to_string())))
    };

    let mut written = Vec::new();
    for (path, bytes) in &template.files {
        if path == CONFIG_FILE || ignore.iter().any(|pat| matches(pat, path)) {
            continue;
        }
        let mut target = String::new();
        for (i, part) in path.split('/').enumerate() {
            let part = if part.contains("{{") || part.contains("{%") {
                render_text(&format!("file name `{path}`"), part)?
            } else {
                part.to_owned()
            };
            if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\']) {
                bail!("template file name `{path}` renders to an unusable name `{part}`");
            }
            if i > 0 {
                target.push('/');
            }
            target.push_str(&part);
        }
        if let Some(stripped) = target.strip_suffix(".liquid") {
            target = stripped.to_owned();
        }
        let verbatim = is_binary(path, bytes)
            || config.exclude.iter().any(|pat| matches(pat, path))
            || (!config.include.is_empty() && !config.include.iter().any(|pat| matches(pat, path)));
        let contents = match (verbatim, std::str::from_utf8(bytes)) {
            (false, Ok(text)) => render_text(&format!("file `{path}`"), text)?.into_bytes(),
            _ => bytes.clone(),
        };
        let dest = out.join(&target);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        fs::write(&dest, contents).with_context(|| format!("cannot write `{}`", dest.display()))?;
        written.push(target);
    }
    written.sort();
    Ok(written)
}

fn fill_defaults(vars: &mut Vars, placeholders: &[(String, Option<Var>)]) -> anyhow::Result<()> {
    for (name, default) in placeholders {
        if vars.contains_key(name) {
            continue;
        }
        match default {
            Some(v) => {
                vars.insert(name.clone(), v.clone());
            }
            None => {
                bail!("the template asks for `{name}`, which has no default and no parrot option")
            }
        }
    }
    Ok(())
}

fn globals(vars: &Vars) -> liquid::Object {
    let mut obj = liquid::Object::new();
    for (k, v) in vars {
        let value = match v {
            Var::Str(s) => liquid::model::Value::scalar(s.clone()),
            Var::Bool(b) => liquid::model::Value::scalar(*b),
        };
        obj.insert(k.clone().into(), value);
    }
    obj
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Binary files (by extension, or not UTF-8) are copied as they are.
pub(crate) fn is_binary(path: &str, bytes: &[u8]) -> bool {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    ext.is_some_and(|e| BINARY_EXTENSIONS.contains(&e.as_str()))
        || std::str::from_utf8(bytes).is_err()
}

/// gitignore-like matching of a template-relative path: a pattern without `/`
/// matches any component (and so everything below it); one with `/` is
/// anchored at the root and matches the path or one of its parent directories.
/// `*` and `?` match within a component, `**` any number of components.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let pat = pattern.trim().trim_start_matches("./").trim_matches('/');
    if pat.is_empty() {
        return false;
    }
    let parts: Vec<&str> = path.split('/').collect();
    if !pat.contains('/') {
        return parts.iter().any(|p| glob(pat, p));
    }
    let pat_parts: Vec<&str> = pat.split('/').collect();
    (1..=parts.len()).any(|n| glob_parts(&pat_parts, &parts[..n]))
}

fn glob_parts(pat: &[&str], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| glob_parts(rest, &path[skip..])),
        Some((p, rest)) => match path.split_first() {
            Some((first, tail)) => glob(p, first) && glob_parts(rest, tail),
            None => false,
        },
    }
}

fn glob(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Evaluates a `[conditional]` key: `a || b`, `a && b`, `!x`, `x`,
/// `x == "v"`, `x != "v"` (no parentheses), over the variables.
pub(crate) fn eval(expr: &str, vars: &Vars) -> anyhow::Result<bool> {
    let or = expr.split("||").map(|conj| {
        conj.split("&&")
            .map(|atom| eval_atom(atom.trim(), expr, vars))
            .try_fold(true, |acc, v| v.map(|v| acc && v))
    });
    or.into_iter().try_fold(false, |acc, v| v.map(|v| acc || v))
}

fn eval_atom(atom: &str, expr: &str, vars: &Vars) -> anyhow::Result<bool> {
    let unsupported = || anyhow!("template condition `{expr}` is not supported by parrot");
    for (op, want) in [("==", true), ("!=", false)] {
        if let Some((l, r)) = atom.split_once(op) {
            let l = value(l.trim(), vars).ok_or_else(unsupported)?;
            let r = value(r.trim(), vars).ok_or_else(unsupported)?;
            return Ok((l == r) == want);
        }
    }
    if let Some(rest) = atom.strip_prefix('!') {
        return eval_atom(rest.trim(), expr, vars).map(|b| !b);
    }
    match value(atom, vars).ok_or_else(unsupported)? {
        Var::Bool(b) => Ok(b),
        Var::Str(s) if s == "true" => Ok(true),
        Var::Str(s) if s == "false" => Ok(false),
        Var::Str(_) => Err(unsupported()),
    }
}

/// A literal (`"x"`, `'x'`, `true`, `false`, a number) or a variable.
fn value(token: &str, vars: &Vars) -> Option<Var> {
    let quoted = |q: char| token.len() >= 2 && token.starts_with(q) && token.ends_with(q);
    if quoted('"') || quoted('\'') {
        return Some(Var::Str(token[1..token.len() - 1].to_owned()));
    }
    match token {
        "true" => return Some(Var::Bool(true)),
        "false" => return Some(Var::Bool(false)),
        _ => {}
    }
    if !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
        return Some(Var::Str(token.to_owned()));
    }
    vars.get(token).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_patterns() {
        assert!(matches("assets", "assets/ring.wav"));
        assert!(matches("*.wav", "assets/ring.wav"));
        assert!(matches("src/media.rs", "src/media.rs"));
        assert!(matches("./src/media.rs", "src/media.rs"));
        assert!(matches("assets/", "assets/a/b.wav"));
        assert!(matches("src/**/*.rs", "src/a/b/c.rs"));
        assert!(!matches("src/media.rs", "src/media.rs.bak"));
        assert!(!matches("media.rs", "src/mediax.rs"));
        assert!(!matches("src/*.rs", "tests/x.rs"));
    }

    #[test]
    fn conditions() {
        let mut vars = Vars::new();
        vars.insert("media".into(), Var::Bool(false));
        vars.insert("port".into(), Var::Str("5060".into()));
        assert!(eval("!media", &vars).unwrap());
        assert!(!eval("media", &vars).unwrap());
        assert!(eval("port == \"5060\"", &vars).unwrap());
        assert!(eval("port == 5060 && !media", &vars).unwrap());
        assert!(eval("media || port != '1'", &vars).unwrap());
        assert!(eval("nope", &vars).is_err());
    }

    #[test]
    fn binary_detection() {
        assert!(is_binary("a/hello.WAV", b"RIFF"));
        assert!(is_binary("a/x.txt", &[0xff, 0xfe]));
        assert!(!is_binary("src/main.rs", b"fn main() {}"));
    }

    #[test]
    fn embedded_templates_load() {
        for kind in ["uas", "uac"] {
            let t = Template::embedded(kind).unwrap();
            assert!(t.files.iter().any(|(p, _)| p == CONFIG_FILE), "{kind}");
        }
    }
}
