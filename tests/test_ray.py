"""`zoo.ray` on a real local Ray cluster (started once for the module): the same records as the local engine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

ray = pytest.importorskip("ray")

PHOTOS = ("bus.jpg", "chelsea.png", "coffee.png", "grace_hopper.jpg")


@pytest.fixture(scope="module")
def cluster() -> Iterator[float]:
    """A local Ray cluster with 2 CPUs; yields the seconds its start took."""
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    took = time.perf_counter() - start
    yield took
    ray.shutdown()


def test_import_zoo_does_not_import_ray() -> None:
    code = "import sys, zoo, zoo.cli; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.assets
def test_ray_engine_gives_the_local_records(
    cluster: float, assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zoo.ray

    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS:
        (photos / name).write_bytes((assets / "images" / name).read_bytes())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    reference = json.loads((assets / "reference" / "mobilenet_v2.json").read_text())

    local_out, ray_out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    runner = CliRunner()
    args = ["predict", "mobilenet_v2", str(photos), "-k", "1", "--device", "cpu", "-b", "2"]
    local = runner.invoke(cli, [*args, "--out", str(local_out)])
    # the Ray engine as users run it: a fresh `zoo` process, which starts a local Ray of its own
    ray_args = [*args, "--engine", "ray", "--num-workers", "2", "--out", str(ray_out)]
    run = subprocess.run([sys.executable, "-m", "zoo", *ray_args], capture_output=True, text=True, timeout=600)
    on_ray = SimpleNamespace(exit_code=run.returncode, output=run.stdout + run.stderr)
    assert local.exit_code == 1 and on_ray.exit_code == 1, on_ray.output  # the broken file: exit 1
    records = {}
    for path in (local_out, ray_out):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        records[path] = {r["input"]: r for r in lines}
        assert len(lines) == len(records[path]) == len(PHOTOS) + 1, (path.name, local.output, on_ray.output)
    assert records[local_out].keys() == records[ray_out].keys()
    for source, record in records[ray_out].items():
        name = Path(source).name
        if name == "broken.jpg":
            assert "error" in record and "error" in records[local_out][source]
            continue
        top = record["top"][0]
        assert top["label"] == records[local_out][source]["top"][0]["label"] == _top1(reference, name)
        assert top["score"] == pytest.approx(records[local_out][source]["top"][0]["score"], abs=1e-4)

    # the callable class, straight on a dataset of image bytes
    ds = ray.data.read_binary_files(sorted(str(p) for p in photos.glob("*.png")), include_paths=True)
    rows = ds.map_batches(
        zoo.ray.Predictor,
        fn_constructor_kwargs={"model": "mobilenet_v2", "top_k": 1},
        batch_size=2,
        compute=ray.data.ActorPoolStrategy(size=1),
        runtime_env={
            "env_vars": {  # fmt: skip
                "ZOO_WEIGHTS_PATH": str(assets / "weights"),
                "ZOO_OFFLINE": "1",
            }
        },
    ).take_all()
    assert sorted(Path(r["input"]).name for r in rows) == ["chelsea.png", "coffee.png"]
    for row in rows:
        assert json.loads(row["result"])["top"][0]["label"] == _top1(reference, Path(row["input"]).name)
    print(f"ray start {cluster:.1f}s")


def test_bad_option_and_missing_out(cluster: float) -> None:
    out = CliRunner().invoke(cli, ["predict", "resnet18:none", "x.jpg", "--engine", "ray"])
    assert out.exit_code != 0 and "--out" in out.output
    from zoo import ray as zoo_ray

    with pytest.raises(zoo.InputError, match="num_workers"):
        zoo_ray.predict(["x.jpg"], "resnet18:none", num_workers=0)


def _top1(reference: dict, name: str) -> str:
    return reference["images"][name][0]["label"]


def test_unreachable_ray_address_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """Ray alone retries a dead address for minutes; zoo says so in one line, in seconds, and leaves no --out file."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "results.jsonl"
    args = ["predict", "resnet18:none", str(tmp_path), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "zoo", *args, "--out", str(out)], capture_output=True, text=True)
    assert time.perf_counter() - start < 60
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"No Ray cluster at 127.0.0.1:{port}" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("address", ["nonsense", "ray://:10001", "host:port"])
def test_malformed_ray_address(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    from zoo import ray as zoo_ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process (the module's cluster may run)
    with pytest.raises(zoo.InputError, match="is not host:port"):
        zoo_ray.connect(address)


def test_default_workers_fill_the_cluster(cluster: float, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No num_workers: one actor per CPU of the cluster (2 here); over a given dataset, an autoscaling 1..2 pool."""
    from zoo import ray as zoo_ray

    assert zoo_ray.actor_room() == 2
    assert zoo_ray.actor_room(num_gpus=1) == 1  # no GPU in this cluster: still one actor, never zero
    seen: list[object] = []
    original = ray.data.Dataset.map_batches

    def spy(self: object, *args: object, **kwargs: object) -> object:
        pool = kwargs["compute"]
        seen.append((pool.min_size, pool.max_size))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ray.data.Dataset, "map_batches", spy)
    (tmp_path / "a.png").write_bytes(b"not run: the datasets are lazy")
    zoo_ray.predict([str(tmp_path / "a.png")], "resnet18:none")
    zoo_ray.predict(ray.data.from_items([{"path": str(tmp_path / "a.png")}]), "resnet18:none")
    zoo_ray.predict([str(tmp_path / "a.png")], "resnet18:none", num_workers=1)
    assert seen == [(2, 2), (1, 2), (1, 1)]
