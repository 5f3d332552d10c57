"""One task vocabulary for every plugin; the names used before it still work as aliases."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import zoo
from zoo.task_names import TASK_ALIASES, TASKS


def test_every_plugin_names_its_models_with_the_vocabulary() -> None:
    tasks = {zoo.info(name).task for name in zoo.list_models()}
    assert tasks - {"pytorch-module"} <= set(TASKS)  # the HF mixin's raw-module task is not a pipeline task
    assert set(TASKS) <= tasks, f"no model for {set(TASKS) - tasks}"


def test_object_detection_lists_every_backend() -> None:
    detectors = {zoo.info(name).plugin: name for name in zoo.list_models(task="object-detection")}
    assert set(detectors) >= {"hub", "ultralytics", "torchvision"}
    names = set(zoo.list_models(task="object-detection"))
    assert {"yolov5s", "yolov8n", "yolo11n", "rtdetr-l", "fasterrcnn_resnet50_fpn", "ssd300_vgg16"} <= names


@pytest.mark.parametrize(("old", "new"), sorted(TASK_ALIASES.items()))
def test_old_task_names_are_aliases(old: str, new: str) -> None:
    old_list = zoo.list_models(task=old)
    assert old_list and old_list == zoo.list_models(task=new)
    from zoo.registry import get_registry

    assert get_registry().task_target(old, "ultralytics") == get_registry().task_target(new, "ultralytics")


def test_a_checkpoint_header_with_an_old_task_name_reads_as_the_new_one() -> None:
    from zoo.checkpoint.metadata import CheckpointInfo

    values = {"model": "yolov8n", "plugin": "ultralytics", "task": "ultralytics-detect"}
    assert CheckpointInfo._build(values, "old.safetensors").task == "object-detection"


def test_each_backend_runs_its_own_implementation_of_a_shared_task() -> None:
    from zoo.registry import get_registry

    registry = get_registry()
    targets = {
        plugin: registry.task_target("object-detection", plugin) for plugin in ("hub", "ultralytics", "torchvision")
    }
    assert targets["hub"] == "zoo.tasks.detection:ObjectDetection"  # YOLOv5: the core's YOLO-style task
    assert targets["ultralytics"] == "zoo_yolo.task:UltralyticsTask"
    assert targets["torchvision"] == "zoo.tasks.torchvision_detection:TorchvisionDetection"


def test_cli_list_json_holds_every_torchvision_builder_and_task() -> None:
    import torchvision.models

    out = subprocess.run([sys.executable, "-m", "zoo", "list", "--json"], capture_output=True, text=True, check=True)
    models = json.loads(out.stdout)
    names = {m["name"] for m in models if m["plugin"] == "torchvision"}
    assert names == set(torchvision.models.list_models())
    assert set(TASKS) <= {m["task"] for m in models}
