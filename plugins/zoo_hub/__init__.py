"""torch.hub repos as zoo models, without torch.hub's traps: `hub:owner/repo[:ref]/entry`, `hub:/dir/entry`,
YOLOv5 (native and hub backends) and AnimeGAN2.

Hub code runs only after trust (`zoo.trust`), in its own module scope, with downloads through the zoo
store. Importing this module never imports torch.
"""

from __future__ import annotations

from zoo import Plugin
from zoo_hub import animegan2, yolov5
from zoo_hub.loader import load_entry
from zoo_hub.scheme import TASK, resolve

__all__ = ["load_entry", "plugin"]

plugin = Plugin("hub", description="torch.hub repos (trusted, isolated, cached), YOLOv5 and AnimeGAN2")
plugin.scheme("hub")(resolve)
plugin.task(TASK, "zoo_hub.task:HubModule")
plugin.command("hub", "zoo_hub.cli:hub_cmd")
plugin.backend("torch", home_env="TORCH_HOME")  # torch.hub's folder; zoo fetches hub repos itself, so no switch
yolov5.declare(plugin)
animegan2.declare(plugin)
