"""AnimeGAN2 (bryandlee/animegan2-pytorch) through the hub plugin: photos to anime-style paintings.

The generator comes from the repo's hubconf (`generator(pretrained=False)`, after trust); its weights are
the repo's `weights/*.pt` state_dicts, fetched through the store (the full sha256 is recorded at first
download: upstream's hubconf "checks" a hash that is not in the file names, so nothing is checked there).
The input is the one the repo's `face2paint` makes (the centre square of the photo, resized to 512 with
PIL's LANCZOS, scaled to [-1, 1]): the spec names zoo's `face2paint` pipeline (`zoo.pipelines`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import ImagePreprocess, ModelSpec, Plugin, Weights
from zoo_hub.names import HubTarget

__all__ = ["FACE2PAINT", "TAGS", "build", "declare"]

OWNER, REPO, REF = "bryandlee", "animegan2-pytorch", "main"
WEIGHTS_URL = "https://github.com/{owner}/{repo}/raw/{ref}/weights/{tag}.pt"
TAGS = {
    "face_paint_512_v2": "portraits, stronger style (upstream default)",
    "face_paint_512_v1": "portraits, first version",
    "celeba_distill": "portraits, distilled on CelebA",
    "paprika": "scenes, in the style of Paprika",
}
#: face2paint: crop the centre square, resize it to 512 with PIL's LANCZOS, scale to [-1, 1].
FACE2PAINT = ImagePreprocess(
    resize=None, crop=512, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="lanczos", pipeline="face2paint"
)


def declare(plugin: Plugin) -> None:
    """Add `animegan2` (tags: face_paint_512_v2 (default), face_paint_512_v1, celeba_distill, paprika)."""
    weights = {
        tag: Weights(
            url=WEIGHTS_URL.format(owner=OWNER, repo=REPO, ref=REF, tag=tag),
            filename=f"animegan2-{tag}.pt",
            format="state_dict-pickle",
            license="MIT",
            meta={"style": style},
        )  # fmt: skip
        for tag, style in TAGS.items()
    }
    plugin.add(
        ModelSpec(
            name="animegan2",
            task="image-to-image",
            builder=build,
            plugin=plugin.name,
            preprocess=FACE2PAINT,
            weights=weights,
            default_weights="face_paint_512_v2",
            description="AnimeGAN2 photo-to-anime generator (bryandlee/animegan2-pytorch, hub code: trust needed)",
            defaults={"ref": REF},
            caller_only=frozenset({"trust", "repo", "ref"}),  # hub code, trust, its source: never from a file
            meta={"family": "animegan2", "hub": f"{OWNER}/{REPO}:{REF}/generator", "output": "tanh"},
        )
    )


def build(*, trust: bool | None = None, repo: str | None = None, ref: str = REF) -> Any:
    """The repo's Generator, random init (zoo loads the weights tag afterwards).

    Args:
        trust: True trusts bryandlee/animegan2-pytorch for this call.
        repo: a local clone to use instead of the GitHub snapshot.
        ref: branch, tag or commit of the repo.
    """
    import torch

    from zoo_hub.loader import load_entry

    if repo is not None:
        target = HubTarget(entry="generator", path=Path(repo).expanduser().absolute())
    else:
        target = HubTarget(entry="generator", owner=OWNER, repo=REPO, ref=ref)
    with torch.device("cpu"):
        return load_entry(target, trust=trust, pretrained=False, device="cpu")
