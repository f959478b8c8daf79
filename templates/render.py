#!/usr/bin/env python3
"""A stand-in for cargo-generate / `parrot new`, for checking the templates.

    python3 templates/render.py TEMPLATE_DIR OUT_DIR NAME [key=value ...]

Renders the liquid subset the templates use ({{ var }}, {% if var %} /
{% else %} / {% endif %}, with `-` whitespace control) and honours
cargo-generate.toml: placeholder defaults, `[template] exclude` (copied
verbatim) and `[conditional.'EXPR'] ignore` where EXPR is `VAR` or `!VAR`.
Values: true/false become booleans; anything else is a string.
"""
import fnmatch
import os
import re
import shutil
import sys
import tomllib

TOKEN = re.compile(r"(\{\{-?.*?-?\}\}|\{%-?.*?-?%\})", re.S)


def render(text, values):
    parts = TOKEN.split(text)
    # whitespace control
    for i in range(1, len(parts), 2):
        tag = parts[i]
        if tag[2] == "-":
            parts[i - 1] = parts[i - 1].rstrip()
        if tag[-3] == "-":
            parts[i + 1] = parts[i + 1].lstrip()
    out, stack = [], []  # stack of (active_before, condition_taken)
    active = True
    for i, p in enumerate(parts):
        if i % 2 == 0:
            if active:
                out.append(p)
            continue
        inner = p[2:-2].strip("-").strip()
        if p.startswith("{{"):
            if active:
                if inner not in values:
                    raise KeyError(f"unknown variable {inner!r}")
                v = values[inner]
                out.append(("true" if v else "false") if isinstance(v, bool) else str(v))
            continue
        words = inner.split()
        if words[0] == "if":
            if len(words) != 2:
                raise ValueError(f"unsupported tag {p!r}")
            cond = values[words[1]]
            truthy = cond is not False and cond is not None
            stack.append((active, truthy))
            active = active and truthy
        elif words[0] == "else":
            outer, taken = stack[-1]
            active = outer and not taken
        elif words[0] == "endif":
            active, _ = stack.pop()
        else:
            raise ValueError(f"unsupported tag {p!r}")
    if stack:
        raise ValueError("unclosed {% if %}")
    return "".join(out)


def matches(rel, patterns):
    return any(
        fnmatch.fnmatch(rel, pat) or rel == pat.rstrip("/") or rel.startswith(pat.rstrip("/") + "/")
        for pat in patterns
    )


def main():
    template, out, name, *pairs = sys.argv[1:]
    with open(os.path.join(template, "cargo-generate.toml"), "rb") as f:
        conf = tomllib.load(f)
    values = {k: v.get("default") for k, v in conf.get("placeholders", {}).items()}
    for pair in pairs:
        k, v = pair.split("=", 1)
        values[k] = {"true": True, "false": False}.get(v, v)
    values["project-name"] = name
    values["crate_name"] = name.replace("-", "_")
    ignore = list(conf.get("template", {}).get("ignore", []))
    for expr, section in conf.get("conditional", {}).items():
        neg = expr.startswith("!")
        if bool(values[expr.lstrip("!")]) != neg:
            ignore += section.get("ignore", [])
    exclude = conf.get("template", {}).get("exclude", [])
    if os.path.exists(out):
        shutil.rmtree(out)
    for root, _, files in os.walk(template):
        for fname in files:
            src = os.path.join(root, fname)
            rel = os.path.relpath(src, template)
            if rel == "cargo-generate.toml" or matches(rel, ignore):
                continue
            dst = os.path.join(out, render(rel, values))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if matches(rel, exclude):
                shutil.copyfile(src, dst)
            else:
                with open(src) as f:
                    text = f.read()
                with open(dst, "w") as f:
                    f.write(render(text, values))
    print(f"rendered {template} -> {out} with {values}")


if __name__ == "__main__":
    main()
