"""Summarise py-spy collapsed stacks (``--format raw``): top self and inclusive frames.

.venv/bin/python bench/spy_top.py profile.txt [--top 30] [--filter confide]
"""

from __future__ import annotations

import argparse
from collections import Counter


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--filter", default="", help="only count inclusive frames containing this")
    p.add_argument(
        "--thread",
        default="",
        help="only stacks whose thread frame contains this (profiles taken with py-spy --threads)",
    )
    a = p.parse_args()
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(a.path) as fh:
        lines = fh.read().splitlines()
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        stack, _, n = line.rpartition(" ")
        count = int(n)
        frames = stack.split(";")
        if frames[0].startswith("thread ("):
            if a.thread not in frames[0]:
                continue
            frames = frames[1:] or ["(thread, no python frame)"]
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            if a.filter in f:
                incl[f] += count
    print(f"total samples: {total}\n\n## self (leaf) time")
    for f, c in self_c.most_common(a.top):
        print(f"{100 * c / total:5.1f}%  {f}")
    print("\n## inclusive time")
    for f, c in incl.most_common(a.top):
        print(f"{100 * c / total:5.1f}%  {f}")


if __name__ == "__main__":
    main()
