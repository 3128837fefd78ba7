#!/usr/bin/env python3
"""Time a command N times (or read hyperfine's JSON) and print median/p90 in ms.

usage: stats.py run N LABEL -- CMD...      time CMD N times (after 2 warm-up runs)
       stats.py hyperfine FILE.json LABEL  summarise a hyperfine export
Prints `LABEL median_ms p90_ms` on the last line (for the caller to parse).
"""
import json
import statistics
import subprocess
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def report(label, ms):
    med = statistics.median(ms)
    p90 = pct(ms, 90)
    print(f"  {label}: n={len(ms)} median={med:.1f} ms p90={p90:.1f} ms "
          f"min={min(ms):.1f} ms max={max(ms):.1f} ms", file=sys.stderr)
    print(f"{label} {med:.3f} {p90:.3f}")


def main():
    mode = sys.argv[1]
    if mode == "hyperfine":
        data = json.load(open(sys.argv[2]))
        report(sys.argv[3], [t * 1000.0 for t in data["results"][0]["times"]])
        return
    n = int(sys.argv[2])
    label = sys.argv[3]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    for _ in range(2):
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        t1 = time.perf_counter()
        if r.returncode != 0:
            sys.stderr.write(r.stderr.decode(errors="replace"))
            sys.exit(f"{label}: command failed with exit code {r.returncode}: {cmd}")
        ms.append((t1 - t0) * 1000.0)
    report(label, ms)


if __name__ == "__main__":
    main()
