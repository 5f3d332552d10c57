"""Hugging Face Hub models as zoo models: `hf:org/repo[@revision]`.

- repos holding a zoo checkpoint (`model.push_to_hub(repo_id)`, or `model.save(folder)` uploaded) load as the
  model they hold, with its labels, preprocessing and training summary;
- timm models (`hf:timm/resnet50.a1_in1k`) when timm is installed (`pip install "zoo-sdk[timm]"`), with
  timm's preprocessing and labels;
- `PyTorchModelHubMixin` repos with the class passed: `zoo.load("hf:org/repo", model_class=MyNet)`.

Files come through the zoo store's `hf:` source, pinned to the commit the revision points to, cached
under the zoo root (huggingface_hub's own cache layout), and load offline once cached. Importing this
never imports torch or huggingface_hub.
"""

from __future__ import annotations

from zoo import ModelSpec, Plugin
from zoo_hf.mixin import build_mixin
from zoo_hf.repo import refresh_hub_constants
from zoo_hf.scheme import resolve
from zoo_hf.timm_models import build_timm

__all__ = ["MIXIN_SPEC", "MIXIN_TASK", "TIMM_SPEC", "plugin"]

MIXIN_TASK = "pytorch-module"

plugin = Plugin(
    "hf", description="Hugging Face Hub repos (hf:org/repo[@rev]): zoo checkpoints, timm, PyTorchModelHubMixin"
)
plugin.scheme("hf")(resolve)
plugin.task(MIXIN_TASK, "zoo_hf.task:RawForward")
plugin.backend(
    "hf", home_env="HF_HOME", offline_env=("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"), refresh=refresh_hub_constants
)

#: The spec of timm models: `hf:timm/...` names fill in the weights; a saved fine-tuned timm model reloads by path.
TIMM_SPEC = plugin.add(
    ModelSpec(
        name="timm",
        task="image-classification",
        builder=build_timm,
        plugin=plugin.name,
        description="a timm image classifier; load one by name: hf:timm/<model>",
        defaults={"architecture": "", "num_classes": 1000},
        meta={"family": "timm"},
        # timm.create_model arguments that load files or fetch: never from a config.json or checkpoint
        caller_only=frozenset(
            {"pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"}
        ),
    )
)
#: The spec of PyTorchModelHubMixin models: `hf:org/repo` names fill in the weights and config.
MIXIN_SPEC = plugin.add(
    ModelSpec(
        name="mixin",
        task=MIXIN_TASK,
        builder=build_mixin,
        plugin=plugin.name,
        description="a PyTorchModelHubMixin model; load one by name: hf:org/repo, model_class=MyNet",
        meta={"family": "huggingface_hub"},
        caller_only=frozenset({"model_class"}),  # the class comes from the caller's code, never from config.json
    )
)
