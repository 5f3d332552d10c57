"""Startup: wall time of fresh processes that import zoo and list its models, against torchvision and timm.

Each command runs in a new subprocess (nothing cached in memory between runs), interleaved round by
round; the table shows the median of each and its ratio to torchvision's own model listing.
Goal: `zoo list` <= 0.2 x `torchvision.models.list_models()`.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

from _common import emit, environment, fail, interleaved, isolate, median, print_table, ratio, verdict

GOAL = 0.2
ANCHOR = "torchvision list_models"


def commands() -> dict[str, list[str]]:
    """The timed command lines, by row name (timm only when it is installed)."""
    python = sys.executable
    script = Path(python).with_name("zoo")
    zoo_list = [str(script), "list"] if script.exists() else [python, "-m", "zoo", "list"]
    rows = {
        "python -c pass": [python, "-c", "pass"],
        "import zoo": [python, "-c", "import zoo"],
        "zoo.list_models()": [python, "-c", "import zoo; zoo.list_models()"],
        "zoo list": zoo_list,
        ANCHOR: [python, "-c", "import torchvision.models as m; m.list_models()"],
    }
    if importlib.util.find_spec("timm") is not None:
        rows["import timm"] = [python, "-c", "import timm"]
    return rows


def run(argv: list[str]) -> None:
    """Run a command to completion, output discarded; a failing command makes its time meaningless."""
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["no message"]
        fail(f"{' '.join(argv)} exited {proc.returncode}: {last[0]}")


def probe() -> dict[str, object]:
    """How many models `zoo.list_models()` lists and whether listing imported torch (it must not)."""
    code = "import sys, zoo; n = len(zoo.list_models()); print(n, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"models_listed": int(out[0]), "torch_imported_by_listing": out[1] == "True"}


def main() -> None:
    """Measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (median taken); at least 5")
    args = parser.parse_args()
    isolate("startup")
    rows = commands()
    times = interleaved({name: (lambda a=argv: run(a)) for name, argv in rows.items()}, max(args.repeat, 5), warmup=1)
    medians = {name: median(values) for name, values in times.items()}
    anchor = medians[ANCHOR]
    facts = probe()
    print_table(
        f"Startup, fresh processes (median of {len(times[ANCHOR])}, interleaved; ratio vs {ANCHOR})",
        ["command", "median s", "ratio"],
        [(name, medians[name], ratio(medians[name], anchor)) for name in rows],
    )
    if "import timm" not in rows:
        print("  timm not installed: that anchor is skipped")
    zoo_list = ratio(medians["zoo list"], anchor)
    print(
        f"\n  zoo lists {facts['models_listed']} models; listing imported torch: {facts['torch_imported_by_listing']}"
    )
    print(f"  goal: zoo list <= {GOAL} x {ANCHOR}: {zoo_list} -> {verdict(zoo_list, GOAL)}")
    emit(
        "startup",
        {
            "median_s": {k: round(v, 4) for k, v in medians.items()},
            "ratio_vs_torchvision_list": {k: ratio(v, anchor) for k, v in medians.items()},
            "repeat": len(times[ANCHOR]),
            **facts,
            "goal": {"zoo list / torchvision list_models": GOAL, "value": zoo_list, "met": zoo_list <= GOAL},
            "env": environment(),
        },
    )


if __name__ == "__main__":
    main()
