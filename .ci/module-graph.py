#!/usr/bin/env python3
"""Prints the graph of imports between the top-level modules of each host
crate (agent/src, runtime/src) and fails if any module reaches one that
reaches it back (a cycle). A module's imports are the `crate::NAME` paths
in its file or directory, outside `#[cfg(test)]` blocks."""
import pathlib
import re
import sys

CRATES = ["runtime/src", "agent/src"]


def strip_tests(text):
    out, depth, skipping = [], 0, False
    for line in text.splitlines():
        if not skipping and line.strip().startswith("#[cfg(test)]"):
            skipping, depth = True, 0
            continue
        if skipping:
            depth += line.count("{") - line.count("}")
            if depth <= 0 and "}" in line:
                skipping = False
            continue
        out.append(line)
    return "\n".join(out)


def graph(src):
    root = pathlib.Path(src)
    modules = {}
    for path in sorted(root.iterdir()):
        if path.suffix == ".rs" and path.stem not in ("lib", "main"):
            modules[path.stem] = [path]
        elif path.is_dir() and any(path.rglob("*.rs")):
            modules[path.name] = sorted(path.rglob("*.rs"))
    edges = {}
    for name, files in modules.items():
        text = "\n".join(strip_tests(f.read_text()) for f in files)
        text = re.sub(r"//.*", "", text)
        used = set(re.findall(r"\bcrate::([a-z_]+)", text))
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
            used.update(re.findall(r"\b([a-z_]+)\b", group))
        edges[name] = sorted(u for u in used if u in modules and u != name)
    return edges


def cycles(edges):
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in edges:
        if node not in state:
            visit(node, [node])
    return found


def main():
    bad = False
    for src in CRATES:
        if not pathlib.Path(src).is_dir():
            continue
        edges = graph(src)
        print(f"{src}:")
        for name, deps in edges.items():
            print(f"  {name} -> {', '.join(deps) if deps else '(nothing)'}")
        for c in cycles(edges):
            bad = True
            print(f"  CYCLE: {' -> '.join(c)}")
    if bad:
        sys.exit("module-graph: import cycles found (see CYCLE lines)")
    print("module-graph: no cycles")


if __name__ == "__main__":
    main()
