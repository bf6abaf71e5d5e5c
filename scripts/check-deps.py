#!/usr/bin/env python3
"""Dependency hygiene of the workspace (issue 10): every dependency of every crate is declared once
in the root `[workspace.dependencies]` and taken with `workspace = true`, and every declared
dependency is used by the crate's code (its `src/`, `tests/`, `benches/`, `examples/`, `build.rs`).

Usage: scripts/check-deps.py            # check, exit 1 with a list of problems

A dependency used only through a macro can be listed in
the crate's `[package.metadata.sealbridge] used-indirectly = ["name", ...]` with the reason in a
comment beside it.
"""
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECTIONS = ("dependencies", "dev-dependencies", "build-dependencies")


def crate_tomls():
    return sorted((ROOT / "crates").glob("*/Cargo.toml"))


def sources(crate_dir):
    for sub in ("src", "tests", "benches", "examples"):
        yield from (crate_dir / sub).rglob("*.rs")
    b = crate_dir / "build.rs"
    if b.exists():
        yield b


def dep_sections(doc):
    """(section name, table) for the plain and target-specific dependency tables."""
    for s in SECTIONS:
        if s in doc:
            yield s, doc[s]
    for target, t in doc.get("target", {}).items():
        for s in SECTIONS:
            if s in t:
                yield f"target.{target}.{s}", t[s]


def check():
    ws = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["dependencies"]
    problems = []
    used_in_ws = set()
    for toml in crate_tomls():
        doc = tomllib.loads(toml.read_text())
        name = doc["package"]["name"]
        meta = doc.get("package", {}).get("metadata", {}).get("sealbridge", {})
        indirect = set(meta.get("used-indirectly", []))
        # Code only: a crate named in a comment ("why not `ciborium`") is not a use of it.
        text = "\n".join(
            re.sub(r"//[^\n]*", "", p.read_text()) for p in sources(toml.parent)
        )
        for section, table in dep_sections(doc):
            for dep, spec in table.items():
                used_in_ws.add(dep)
                if not (isinstance(spec, dict) and spec.get("workspace") is True):
                    problems.append(f"{name}: [{section}] {dep} is declared inline; "
                                    "declare it in [workspace.dependencies] and use `workspace = true`")
                ident = dep.replace("-", "_")
                if dep in indirect:
                    continue
                if re.search(rf"\b{re.escape(ident)}\b", text):
                    continue
                problems.append(f"{name}: [{section}] {dep} is declared but no source of the crate uses it")
    for dep in ws:
        if dep not in used_in_ws:
            problems.append(f"workspace: [workspace.dependencies] {dep} is used by no crate")
    return problems


def main():
    problems = check()
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} dependency problem(s)")
        return 1
    print("dependencies: all declared once in the workspace, all used")
    return 0


if __name__ == "__main__":
    sys.exit(main())
