#!/usr/bin/env python3
"""Kernel launches by kernel, from cubecl's profiling log (burn's wgpu and CUDA backends).

Run a command twice with the profiling logger on, the second time with one step more, and the
difference is the launches of one step, whatever the set-up launched:

    CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG=/tmp/a.log brainmvp bench pretrain ... --steps 1
    CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG=/tmp/b.log brainmvp bench pretrain ... --steps 2
    python3 bench/launch_table.py /tmp/a.log /tmp/b.log

With one log it counts everything in it. Each launch is a line `| <duration> | <kernel name> |
<generic arguments>`; the table groups by the kernel name (the first field).
"""
import collections
import re
import sys

# A launch line: `| 1.383246ms | PrngKernel | NormalFamily | WgpuRuntime` (the summary tables the
# logger also prints have other shapes).
LAUNCH = re.compile(r"^\| [0-9.]+(ns|µs|ms|s)\s*\| (\w+)")


def launches(path):
    counts = collections.Counter()
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            match = LAUNCH.match(line)
            if match:
                counts[match.group(2)] += 1
    return counts


def main(paths):
    if len(paths) not in (1, 2):
        sys.exit("usage: launch_table.py LOG [LOG_WITH_ONE_STEP_MORE]")
    counts = launches(paths[-1])
    if len(paths) == 2:
        counts.subtract(launches(paths[0]))
    rows = sorted(((n, k) for k, n in counts.items() if n), reverse=True)
    total = sum(n for n, _ in rows)
    print(f"| kernel | launches | share |\n|---|---|---|")
    for n, kernel in rows:
        print(f"| `{kernel}` | {n} | {100 * n / max(total, 1):.1f} % |")
    print(f"| **all** | **{total}** | |")


if __name__ == "__main__":
    main(sys.argv[1:])
