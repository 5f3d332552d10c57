"""Run every benchmark (or those named), each in a fresh interpreter, and sum up their ratios.

Usage: `python bench/run_all.py [NAME ...]`. Every `bench/*.py` except `run_all.py` and `_*.py` is a
benchmark; the core ones run first, in the order of `CORE`. Each benchmark's own table
is shown as it runs; at the end comes a summary table and one JSON line with every benchmark's result.
Exits 1 when a benchmark failed (crashed, or a correctness check in it did not hold); a missed timing
goal is reported, not failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import print_table

HERE = Path(__file__).resolve().parent
CORE = ("startup", "load", "predict", "images", "gpu_predict")


def benchmarks() -> list[str]:
    """Names of the benchmark scripts beside this one: the core ones first, then the others sorted."""
    found = {p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "run_all"}
    return [name for name in CORE if name in found] + sorted(found - set(CORE))


def run(name: str) -> tuple[dict[str, Any] | None, float]:
    """Run `bench/<name>.py`, echoing its output; returns its JSON result (None on failure) and wall time."""
    print(f"\n=== {name} ===", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py")], stdout=subprocess.PIPE, text=True)
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.strip():
            last = line
    code = proc.wait()
    elapsed = time.perf_counter() - start
    if code != 0:
        return None, elapsed
    try:
        return json.loads(last), elapsed
    except json.JSONDecodeError:
        return None, elapsed


def headline(result: dict[str, Any] | None) -> str:
    """The one figure that sums up a benchmark's result."""
    if result is None:
        return "FAILED"
    if result.get("skipped"):
        return result.get("reason", "skipped")
    bench = result["bench"]
    if bench == "startup":
        goal = result["goal"]
        return f"zoo list / torchvision list_models = {goal['value']} (goal <= 0.2)"
    if bench == "load":
        return ", ".join(f"{m} {r['ratio']}" for m, r in result["models"].items()) + " (resnet50 goal <= 0.35)"
    if bench == "predict":
        return f"predict / raw forward = {result['ratio']} (goal <= 1.05)"
    if bench == "images":
        return f"zoo {result['speedup_vs_tutorial']} x tutorial images/s"
    if bench == "gpu_predict":
        return ", ".join(f"{g['value']} x {k} (goal >= {g['goal']})" for k, g in result["goals"].items())
    goals = [result["goal"]] if isinstance(result.get("goal"), dict) else list(result.get("goals", {}).values())
    return ", ".join(f"{g.get('value')} ({'ok' if g.get('met') else 'MISSED'})" for g in goals) or "done"


def main() -> None:
    """Run the benchmarks, print the summary and the JSON line; exit 1 if one failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    known = benchmarks()
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(known)} (default: all)"
    )
    names = parser.parse_args().names or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(known)}")
    results = {}
    rows = []
    for name in names:
        result, elapsed = run(name)
        results[name] = result
        rows.append((name, f"{elapsed:.0f}", headline(result)))
    print_table("Summary", ["benchmark", "wall s", "result"], rows)
    print(json.dumps({"bench": "all", "results": results}))
    if any(result is None for result in results.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
