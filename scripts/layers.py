#!/usr/bin/env python3
"""Checks the library's layering: each layer may use only the layers listed before it.

Reads every `crate::` path in src/ (the CLI under src/bin/ is a client of the library and is not
checked), outside comments and `#[cfg(test)]` items, resolves it through the crate's `pub use`
re-exports to the module that defines the item, and maps both ends to a layer (the longest
entry of LAYERS that is a prefix of the module's path). Prints every edge that points up and every
cycle between layers; exits 1 if there is any. `--graph` also prints the layer graph.

Python 3 standard library only. Run from anywhere: `python3 scripts/layers.py`.
"""

import os
import re
import sys

# Bottom first. A layer may import any layer before it, never one after it. An entry with `::`
# is a module inside another layer's folder that sits lower than the rest of that folder.
LAYERS = [
    "error",  # Error, ErrorKind, PKCS#11 classification
    "alg",  # vocabulary: HmacAlg, KeyKind, Signature
    "config",  # the configuration file and the signing limits
    "token",  # module, slot, login, sessions, the HMAC turn, recovery, probes
    "keys",  # specs, metadata, templates, import, generation, lifecycle, seals, cache
    "exchanges::reach",  # what a signature is good for (Reach), request inputs
    "sign",  # the Mac trait and the request context exchange signers pass to it
    "exchanges",  # one signer per exchange, the registry
    "guard",  # the Guard hook: SignContext, LifecycleEvent
    "policy",  # what may be signed
    "audit",  # the chained, token-MACed record of it
    "guardrails",  # the crate's Guard: policy + rates + audit
    "custody",  # Custody and KeyRef: connect, lifecycle facade, signing loop
    "doctor",  # health checks of a module and its keys
    "admin",  # token initialisation for setup and tests
    "asynch",  # the async facade
    "agent",  # the signing agent
    "gateway",  # the re-signing HTTP gateway (uses the agent's access lists and shutdown)
]

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    """The module path (list of names) of a source file under src/."""
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def strip_comments(src):
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif src.startswith("r#\"", i):
            j = src.find('"#', i + 3)
            out.append('""')
            i = n if j < 0 else j + 2
        elif src[i] == "'" and i + 2 < n and (src[i + 2] == "'" or src[i + 1] == "\\"):
            # a char literal ('"', '\'', '\n'), not a lifetime
            j = src.find("'", i + 2)
            out.append("' '")
            i = j + 1
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


def strip_cfg_test(src):
    """Removes every item under `#[cfg(test)]` (a `mod tests { .. }`, a test helper ...)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", src)
        if not m:
            return src
        i = m.end()
        depth = 0
        while i < len(src):
            c = src[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            elif c == ";" and depth == 0:
                i += 1
                break
            i += 1
        src = src[: m.start()] + src[i:]


def split_top(s):
    parts, depth, cur = [], 0, ""
    for c in s:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def expand_use(tree):
    """`a::{b, c::{d as e}}` -> [(['a','b'], 'b'), (['a','c','d'], 'e')]."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if m:
        prefix = [p.strip() for p in m.group(1).split("::") if p.strip()]
        out = []
        for part in split_top(m.group(2)):
            for path, name in expand_use(part):
                out.append((prefix + path, name))
        return out
    alias = re.match(r"^(.*?)\s+as\s+([A-Za-z_][A-Za-z0-9_]*)$", tree, re.S)
    path, name = (alias.group(1), alias.group(2)) if alias else (tree, None)
    segs = [p.strip() for p in path.split("::") if p.strip()]
    if not segs:
        return []
    return [(segs, name or segs[-1])]


def absolute(segs, here):
    """A `use` path made absolute (from the crate root), or None for an external crate."""
    if not segs:
        return None
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] == "self":
        return here + segs[1:]
    if segs[0] == "super":
        if len(segs) > 1 and segs[1] in INLINE.get(tuple(here), set()):
            # `super::x` from inside an inline module `x`'s sibling: files are indexed, inline
            # modules are not nested, so this is the file's own module
            return here + segs[1:]
        base = list(here)
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
        return base + segs
    if segs[0] in MODULES.get(tuple(here), set()):
        return here + segs
    return None


def load():
    files = {}
    for dp, dirs, fs in os.walk(ROOT):
        if os.path.relpath(dp, ROOT).split(os.sep)[0] == "bin":
            continue
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.join(dp, f)
                with open(p, encoding="utf-8") as fh:
                    files[p] = strip_cfg_test(strip_comments(fh.read()))
    return files


MODULES = {}  # module path -> names of its child modules (from `mod x;` and inline `mod x {`)
INLINE = {}  # module path -> names of its inline child modules (`mod x { .. }`)
REEXPORTS = {}  # (module path, name) -> absolute path it re-exports


def index(files):
    for p, src in files.items():
        here = tuple(module_of(p))
        for m in re.finditer(r"\bmod\s+([a-z_][a-z0-9_]*)\s*[;{]", src):
            MODULES.setdefault(here, set()).add(m.group(1))
            if m.group(0).endswith("{"):
                INLINE.setdefault(here, set()).add(m.group(1))
    for p, src in files.items():
        here = module_of(p)
        for m in re.finditer(r"\bpub(?:\([a-z]+\))?\s+use\s+([^;]+);", src):
            for segs, name in expand_use(m.group(1)):
                target = absolute(segs, here)
                if target is not None and name not in ("self", "*"):
                    REEXPORTS[(tuple(here), name)] = target


def resolve(path, seen=0):
    """The module that defines the item at `path` (absolute, from the crate root)."""
    mod = []
    for i, seg in enumerate(path):
        if seg in MODULES.get(tuple(mod), set()):
            mod.append(seg)
            continue
        target = REEXPORTS.get((tuple(mod), seg))
        if target is not None and seen < 20:
            return resolve(target + path[i + 1 :], seen + 1)
        break
    return mod


def layer(mod):
    best = None
    for entry in LAYERS:
        e = entry.split("::")
        if mod[: len(e)] == e and (best is None or len(e) > len(best.split("::"))):
            best = entry
    return best


def uses(src, here):
    """Every absolute path this file names (from `use` items and inline `crate::` paths)."""
    out = []
    for m in re.finditer(r"\buse\s+([^;]+);", src):
        for segs, _ in expand_use(m.group(1)):
            a = absolute(segs, here)
            if a:
                out.append(a)
    body = re.sub(r"\buse\s+[^;]+;", "", src)
    for m in re.finditer(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)", body):
        a = absolute([m.group(1)] + m.group(2).split("::")[1:], here)
        if a:
            out.append(a)
    return out


def main():
    files = load()
    index(files)
    rank = {name: i for i, name in enumerate(LAYERS)}
    edges = {}
    bad = []
    unknown = set()
    for p, src in sorted(files.items()):
        here = module_of(p)
        if not here:
            continue  # lib.rs: the public surface re-exports from every layer
        src_layer = layer(here)
        if src_layer is None:
            unknown.add("/".join(here))
            continue
        for path in uses(src, here):
            dst_layer = layer(resolve(path))
            if dst_layer is None or dst_layer == src_layer:
                continue
            edges.setdefault(src_layer, set()).add(dst_layer)
            if rank[dst_layer] > rank[src_layer]:
                bad.append(
                    f"{os.path.relpath(p, os.path.join(ROOT, '..'))}: "
                    f"{src_layer} uses {dst_layer} (crate::{'::'.join(path)})"
                )
    cycles = find_cycles(edges)
    if "--graph" in sys.argv:
        for k in LAYERS:
            print(f"{k:18} -> {' '.join(sorted(edges.get(k, ()), key=rank.get))}")
    for u in sorted(unknown):
        print(f"module in no layer (add it to LAYERS in scripts/layers.py): {u}")
    for b in sorted(set(bad)):
        print(f"upward import: {b}")
    for c in cycles:
        print(f"cycle among: {', '.join(c)}")
    if bad or cycles or unknown:
        print(f"{len(set(bad))} upward imports, {len(cycles)} cycles (order: {', '.join(LAYERS)})")
        return 1
    print(f"layers ok: {', '.join(LAYERS)}")
    return 0


def find_cycles(edges):
    """Strongly connected components of more than one layer (Tarjan)."""
    index_of, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index_of[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index_of:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index_of[w])
        if low[v] == index_of[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index_of:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
