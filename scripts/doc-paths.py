#!/usr/bin/env python3
"""Checks that every repository path README.md and docs/*.md name exists.

A path is a word with a slash starting with one of the repository's top-level directories
(src/, tests/, docs/ ...) or with a directory of src/ (`keys/vault.rs` is src/keys/vault.rs).
Words with placeholders (<name>, NAME, *, ..., {a,b}) are checked up to the placeholder; bare
file names (`registry.rs`) are not checked. Prints each missing path with its file and line;
exits 1 if there is one.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = sorted(
    d for d in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, d)) and not d.startswith(".")
)
TOP = [d for d in TOP if d != "target"]
# Paths in other projects' sources that the docs cite (Kryoptic's, in docs/backends.md).
ELSEWHERE = {"src/fns/sessmgmt.rs", "src/fns/signing.rs"}
WORD = re.compile(r"[A-Za-z0-9_./<>*{}\-]+")
SRC_DIRS = [d for d in os.listdir(os.path.join(ROOT, "src"))]


def candidates(word, doc):
    word = word.strip(".,;:()`'\"")
    if "://" in word or word.startswith("/") or "/" not in word:
        return []
    if word in ELSEWHERE:
        return []
    cut = re.split(r"[<*{]|\.\.\.|(?<=/)[A-Z]{2,}\b", word, maxsplit=1)[0]
    if cut != word:
        cut = cut.rsplit("/", 1)[0] + "/" if "/" in cut else ""
    if not cut:
        return []
    first = cut.split("/", 1)[0]
    if first in TOP:
        return [cut]
    if first in SRC_DIRS and first not in TOP:
        return ["src/" + cut]
    return []


def main():
    docs = ["README.md"] + sorted(
        os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")
    )
    missing = 0
    for doc in docs:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                for word in WORD.findall(line):
                    for path in candidates(word, doc):
                        if not os.path.exists(os.path.join(ROOT, path.rstrip("/"))):
                            print(f"{doc}:{n}: {path}")
                            missing += 1
    if missing:
        print(f"{missing} path(s) named in the docs do not exist", file=sys.stderr)
        return 1
    print("doc paths ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
