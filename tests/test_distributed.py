"""`finetune` under `torchrun --nproc_per_node 2` on CPU (gloo): DDP keeps the ranks identical, rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

SCRIPT = """
import json, os, sys
import torch
import zoo
from zoo.model import Model
from tests.conftest import tiny_cnn
from tests.test_finetune import PRE, colours

rank = int(os.environ["RANK"])
out = sys.argv[1]
saves = []
original = Model.save
Model.save = lambda self, path: (saves.append(str(path)), original(self, path))[1]
zoo.register("tiny", task="image-classification", preprocess=PRE)(lambda num_classes=3: tiny_cnn(num_classes))
torch.manual_seed(100 + rank)  # different random init on each rank: DDP must make them agree
model = zoo.load("tiny:none", device="cpu")
model.finetune(colours(60), 0.2, epochs=2, batch_size=8, seed=0, out=os.path.join(out, "run"), patience=None)
torch.save(model.module.state_dict(), os.path.join(out, f"rank{rank}.pt"))
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"history": model.history.to_dict(), "saves": saves, "summary": model.training_summary}, f)
"""


def test_two_cpu_processes_end_identical_and_one_checkpoint_is_written(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() or not torch.distributed.is_available():
        pytest.skip("torchrun / torch.distributed is not available")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["history"]["epochs"] == info[1]["history"]["epochs"]  # metrics reduced over both ranks
    assert info[0]["summary"]["world_size"] == 2 and info[0]["summary"]["val_samples"] == 12
    assert info[1]["saves"] == [] and info[0]["saves"]
    assert set(info[0]["saves"]) == {str(tmp_path / "run" / "best.safetensors")}
    reports = ["confusion_matrix.png", "curves.png", "per_class.csv", "results.csv"]  # zoo.train.reports
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(["best.safetensors", "last.pt", *reports])
    rows = (tmp_path / "run" / "per_class.csv").read_text().splitlines()[1:]
    assert sum(int(row.split(",")[5]) for row in rows) == 12  # confusion counts summed over both ranks' shards
