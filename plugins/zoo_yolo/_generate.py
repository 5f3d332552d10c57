"""Generate `catalog.json` of the ultralytics plugin from the installed ultralytics package.

Every model yaml ultralytics ships (`ultralytics/cfg/models/**.yaml`) whose head is a detect, segment,
classify, pose or obb head becomes one catalog name per scale, named the way ultralytics names its files
(`yolov8-seg.yaml` scale `n` -> `yolov8n-seg`; YOLOv3/v5 get ultralytics' `u` suffix: `yolov5nu`).
A name whose `.pt` file is one of ultralytics' GitHub release assets gets those weights. Class labels
come from ultralytics' dataset yamls (COCO, ImageNet, DOTAv1, COCO-pose). Text-prompted models (World,
YOLOE) need extra text encoders and are left out.

    .venv/bin/python -m zoo_yolo._generate          # rewrite plugins/zoo_yolo/catalog.json
    .venv/bin/python -m zoo_yolo._generate --check  # exit 1 when it is stale

`tests/test_yolo.py` fails when the catalog no longer matches the installed ultralytics.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_catalog", "main", "render"]

FORMAT = 1
CATALOG = Path(__file__).resolve().parent / "catalog.json"
#: Tasks zoo runs; ultralytics' semantic-segmentation and depth heads are left out for now.
TASKS = ("detect", "segment", "classify", "pose", "obb")
#: Model yamls left out: text-prompted detectors (World, YOLOE) need CLIP-style text encoders.
SKIP = re.compile(r"(world|yoloe)")
#: Label set of each task's released weights: dataset yaml in ultralytics/cfg/datasets.
LABELS = {"detect": "coco", "segment": "coco", "classify": "imagenet", "pose": "coco-pose", "obb": "dota"}
DATASETS = {"coco": "coco.yaml", "imagenet": "ImageNet.yaml", "coco-pose": "coco-pose.yaml", "dota": "DOTAv1.yaml"}
ASSETS_URL = "https://github.com/ultralytics/assets/releases/download/{release}/{file}"


def _name(stem: str, scale: str | None, many: bool) -> str:
    """The model name ultralytics gives a yaml stem at a scale: `yolov8-seg` + n -> `yolov8n-seg`."""
    name = stem
    if many and scale:
        if stem.startswith("yolov5-p6"):  # ultralytics names the P6 YOLOv5 models yolov5n6u
            return f"yolov5{scale}6u"
        name = re.sub(r"^(yolov?\d+)", rf"\g<1>{scale}", stem, count=1)
    if re.match(r"^yolov[35]", name) and not name.endswith("u"):
        name += "u"  # ultralytics' anchor-free re-implementation, as its release files name it
    return name


def _entries(root: Path, assets: frozenset[str]) -> dict[str, dict[str, Any]]:
    from ultralytics.nn.tasks import guess_model_task
    from ultralytics.utils import YAML

    models: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "cfg" / "models").rglob("*.yaml")):
        if SKIP.search(path.stem):
            continue
        cfg = YAML.load(path)
        head = str(cfg["head"][-1][-2])
        task = "detect" if head == "RTDETRDecoder" else guess_model_task(cfg)
        if task not in TASKS:
            continue
        scales = list((cfg.get("scales") or {}).keys()) or [None]
        for scale in scales:
            name = _name(path.stem, scale, len(scales) > 1)
            file = f"{name}.pt"
            models[name] = {
                "cfg": path.relative_to(root / "cfg" / "models").as_posix(),
                "scale": scale,
                "task": task,
                "family": "rtdetr" if head == "RTDETRDecoder" else "yolo",
                "labels": LABELS[task],
                "weights": file if file in assets else None,
            }
    return dict(sorted(models.items()))


def _labels(root: Path) -> dict[str, list[str]]:
    from ultralytics.utils import YAML

    out = {}
    for key, file in DATASETS.items():
        names = YAML.load(root / "cfg" / "datasets" / file)["names"]
        out[key] = [names[i] for i in sorted(names)]
    return out


def build_catalog() -> dict[str, Any]:
    """The catalog of the installed ultralytics, as a JSON-ready dict."""
    import ultralytics
    from ultralytics.utils import downloads

    root = Path(ultralytics.__file__).resolve().parent
    release = inspect.signature(downloads.attempt_download_asset).parameters["release"].default
    return {
        "format": FORMAT,
        "ultralytics": ultralytics.__version__,
        "release": release,
        "url": ASSETS_URL,
        "labels": _labels(root),
        "models": _entries(root, frozenset(downloads.GITHUB_ASSETS_NAMES)),
    }


def render(catalog: dict[str, Any]) -> str:
    """The catalog as the text of `catalog.json` (label lists on one line each, to keep the file short)."""
    labels = catalog["labels"]
    body = json.dumps({**catalog, "labels": {}}, indent=1, sort_keys=False)
    inline = ",\n".join(f'  "{k}": {json.dumps(v)}' for k, v in labels.items())
    return body.replace('"labels": {}', '"labels": {\n' + inline + "\n }") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or `--check`) `catalog.json`; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when catalog.json is stale")
    args = parser.parse_args(argv)
    from zoo_yolo.runtime import ultralytics_module

    ultralytics_module()  # imported the zoo way: no DNS probe, settings under the zoo root
    text = render(build_catalog())
    if args.check:
        stale = not CATALOG.is_file() or CATALOG.read_text(encoding="utf-8") != text
        sys.stderr.write(f"{CATALOG} is {'stale' if stale else 'up to date'}\n")
        return int(stale)
    CATALOG.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
