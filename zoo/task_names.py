"""The one task vocabulary every plugin names its models with, and the old names still read."""

from __future__ import annotations

__all__ = ["TASKS", "TASK_ALIASES", "canonical_task"]

#: The task names, like the Hugging Face pipeline tasks.
TASKS = (
    "image-classification",
    "object-detection",
    "instance-segmentation",
    "keypoint-detection",
    "semantic-segmentation",
    "video-classification",
    "optical-flow",
    "image-to-image",
    "sequence-classification",
)
#: Task names used before the one vocabulary, still read (a checkpoint header stores its model's task name)
#: and still accepted by `zoo list --task`: old name -> the name in the vocabulary.
TASK_ALIASES = {
    "ultralytics-detect": "object-detection",
    "ultralytics-obb": "object-detection",
    "ultralytics-segment": "instance-segmentation",
    "ultralytics-pose": "keypoint-detection",
    "ultralytics-classify": "image-classification",
}


def canonical_task(task: str) -> str:
    """The vocabulary name of `task` (an old name such as `ultralytics-detect` becomes `object-detection`)."""
    return TASK_ALIASES.get(task, task)
