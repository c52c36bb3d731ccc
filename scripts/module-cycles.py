#!/usr/bin/env python3
"""Reports import cycles between modules of each crate of the workspace; exits 1 on any.

A module's dependencies are the `crate::…` and `super::…` paths its file names, in code
(its test modules included: a test that reaches into a sibling ties the two as much as
code does) or in intra-doc links. Modules are compared with their siblings: `a` depends on `b` when something
in `a` (or below it) names something in `b` (or below it). A folder module's `mod.rs` assembles its children and may
hold what they share, so parent and child are not a cycle; two siblings that name each
other, directly or around a loop, are. Crate-level cycles are cargo's to refuse.

    scripts/module-cycles.py [CRATE_DIR ...]     (default: every workspace member)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def members():
    text = open(os.path.join(ROOT, "Cargo.toml")).read()
    block = re.search(r"members\s*=\s*\[(.*?)\]", text, re.S).group(1)
    return [m for m in re.findall(r'"([^"]+)"', block)]


def module_files(src):
    """{module path (tuple): file} for every .rs file under src."""
    out = {}
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(d, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts and parts[0] == "bin":
                continue  # binaries are crates of their own
            out[tuple(parts)] = os.path.join(d, f)
    return out


def references(path, module, modules):
    text = open(path).read()
    # Comments and docs name modules in prose; intra-doc links (`[`crate::x`]`) are
    # references rustdoc resolves, so they count.
    links = " ".join(re.findall(r"\[`((?:crate|super)(?:::\w+)+)`\]", text))
    text = re.sub(r"//[^\n]*", "", text) + "\n" + links
    refs = set()
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
        head, rest = m.group(1), [p for p in m.group(2).split("::") if p]
        base = [] if head == "crate" else list(module[:-1])
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
        target = base + rest
        # The longest prefix that is a module (the rest names items in it).
        for n in range(len(target), -1, -1):
            if tuple(target[:n]) in modules:
                refs.add(tuple(target[:n]))
                break
    # `use crate::{a, b::c}` groups.
    for m in re.finditer(r"\buse\s+crate::\{([^;]*)\};", text, re.S):
        for item in re.findall(r"(\w+)(?:::|\s*[,}]|\s*$)", m.group(1)):
            if (item,) in modules:
                refs.add((item,))
    return refs


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def check(crate_dir):
    src = os.path.join(crate_dir, "src")
    modules = module_files(src)
    edges = {}
    for module, path in modules.items():
        for target in references(path, module, modules):
            # Lift both ends to the children of their deepest common parent.
            n = 0
            while n < min(len(module), len(target)) and module[n] == target[n]:
                n += 1
            if n == len(module) or n == len(target):
                continue  # the same module, or parent and child
            parent, a, b = module[:n], module[n], target[n]
            edges.setdefault(parent, {}).setdefault(a, set()).add(b)
    found = []
    for parent, graph in sorted(edges.items()):
        for comp in cycles(graph):
            where = "::".join(parent) or "crate"
            found.append(f"{os.path.relpath(crate_dir, ROOT)}: {where}: {' <-> '.join(comp)}")
    return found


def main():
    crates = sys.argv[1:] or [os.path.join(ROOT, m) for m in members()]
    found = [c for d in crates for c in check(d)]
    for f in found:
        print("import cycle:", f)
    if found:
        return 1
    print(f"no import cycles between modules in {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
