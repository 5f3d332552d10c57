"""`zoo predict --out FILE [--resume]`: one record per input, written a batch at a time, resumable after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import zoo
from zoo.outputs import open_records, record_of
from zoo.results import Classification


def _result(source: str, label: str = "cat") -> Classification:
    return Classification((label, "dog"), (0.75, 0.25), (3, 1), source)


def test_jsonl_records_and_a_torn_last_line_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with open_records(out) as sink:
        sink.write([record_of(_result("a.jpg")), record_of(zoo.SkippedInput("b.jpg", "not an image"))])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"input": "a.jpg", "top": [{"label": "cat", "index": 3, "score": 0.75},
                                                  {"label": "dog", "index": 1, "score": 0.25}]}  # fmt: skip
    assert lines[1] == {"input": "b.jpg", "error": "not an image"}
    with pytest.raises(zoo.InputError, match="--resume"):
        open_records(out)
    with open(out, "a") as file:  # a run killed in the middle of a record
        file.write('{"input": "c.jpg", "top": [{"lab')
    with open_records(out, resume=True) as sink:
        assert sink.done == {"a.jpg", "b.jpg"}
        sink.write([record_of(_result("c.jpg"))])
    assert [json.loads(line)["input"] for line in out.read_text().splitlines()] == ["a.jpg", "b.jpg", "c.jpg"]
    out.write_text('{"input": "a.jpg"}\nnot json\n')
    with pytest.raises(zoo.ZooError, match="line 2"):
        open_records(out, resume=True)


def test_csv_and_parquet(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    with open_records(out) as sink:
        sink.write([record_of(_result("a.jpg")), record_of(zoo.SkippedInput("b.jpg", "bad"))])
    with open(out, "a") as file:
        file.write("c.jpg,[")
    with open_records(out, resume=True) as sink:
        assert sink.done == {"a.jpg", "b.jpg"}
        sink.write([record_of(_result("c.jpg", "owl"))])
    rows = list(csv.DictReader(out.open()))
    assert [r["input"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert json.loads(rows[2]["top"])[0]["label"] == "owl" and rows[1]["error"] == "bad"

    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "r.parquet"
    sink = open_records(out)
    sink.write([record_of(_result("a.jpg"))])  # a run killed here leaves the journal, not a broken file
    sink._journal.close()  # noqa: SLF001 - what a kill leaves
    assert not out.exists() and (tmp_path / "r.parquet.partial.jsonl").exists()
    with open_records(out, resume=True) as sink:
        assert sink.done == {"a.jpg"}
        sink.write([record_of(zoo.SkippedInput("b.jpg", "bad"))])
    table = pq.read_table(out).to_pylist()
    assert [(r["input"], r["error"]) for r in table] == [("a.jpg", None), ("b.jpg", "bad")]
    assert table[0]["top"][0]["label"] == "cat"
    assert not (tmp_path / "r.parquet.partial.jsonl").exists()
    with open_records(out, resume=True) as sink:
        assert sink.done == {"a.jpg", "b.jpg"}


def test_parquet_without_pyarrow_and_bad_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(zoo.InputError, match="pyarrow"):
        open_records(tmp_path / "r.parquet")
    with pytest.raises(zoo.InputError, match=".jsonl, .csv or .parquet"):
        open_records(tmp_path / "r.txt")


@pytest.mark.assets
def test_kill_9_mid_run_then_resume_gives_every_input_exactly_once(assets: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    names = ["bus.jpg", "chelsea.png", "coffee.png", "zidane.jpg"]
    for i in range(24):
        name = names[i % len(names)]
        Image.open(assets / "images" / name).convert("RGB").resize((160, 120)).save(photos / f"{i:02d}-{name}")
    (photos / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    env = {**os.environ, "ZOO_WEIGHTS_PATH": str(assets / "weights"), "ZOO_OFFLINE": "1"}
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, "-m", "zoo", "predict", "mobilenet_v2", str(photos), "-k", "1", "-b", "2",
           "--device", "cpu", "--num-workers", "0", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = out.read_text().count("\n")
    assert 4 <= first < 25, "the run was not killed in the middle"
    with open(out, "a") as file:
        file.write('{"input": "' + str(photos))  # and torn in the middle of a record
    again = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, again.stderr  # the broken file is an error record, and exit 1
    assert "Traceback" not in again.stderr and f"{first} input(s) done" in again.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    inputs = [r["input"] for r in records]
    assert sorted(inputs) == sorted(str(p) for p in photos.iterdir())  # every input exactly once
    by_input = {r["input"]: r for r in records}
    assert "error" in by_input[str(photos / "zz-broken.jpg")]
    model = zoo.load("mobilenet_v2", device="cpu")
    for path in sorted(photos.iterdir())[:: 5]:
        if path.name != "zz-broken.jpg":
            assert by_input[str(path)]["top"][0]["label"] == model.predict(path, top_k=1).labels[0]


def test_cli_refuses_resume_without_out_and_a_bad_worker_count(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    out = CliRunner().invoke(cli, ["predict", "resnet18:none", str(tmp_path), "--resume"])
    assert out.exit_code == 1 and "--resume goes with --out" in out.output and "Traceback" not in out.output
    out = CliRunner().invoke(cli, ["predict", "resnet18:none", str(tmp_path), "--num-workers", "lots"])
    assert out.exit_code == 1 and "--num-workers lots" in out.output
