"""`VideoClassification`: the top-k classes of one video, its clip scores averaged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["VideoClassification"]


@dataclass(frozen=True)
class VideoClassification:
    """Top-k classes of one video, best first: the softmax of each clip, averaged over the clips.

    Attributes:
        labels: class labels, best first.
        scores: mean clip probabilities, descending.
        indices: class indices into the model's output.
        source: where the video came from (a path, or `<input 3>`), when known.
        clips: how many clips were scored.
        frames: how many frames the video had.
    """

    labels: tuple[str, ...]
    scores: tuple[float, ...]
    indices: tuple[int, ...]
    source: str | None = None
    clips: int = 1
    frames: int = 0

    @property
    def label(self) -> str:
        """The top-1 label."""
        return self.labels[0]

    @property
    def score(self) -> float:
        """The top-1 score."""
        return self.scores[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source, clip and frame counts, and `{label, index, score}` best first."""
        return {
            "source": self.source,
            "clips": self.clips,
            "frames": self.frames,
            "top": [{"label": a, "index": i, "score": s} for a, i, s in zip(self.labels, self.indices, self.scores)],
        }

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        top = ", ".join(f"{label!r}: {score:.3f}" for label, score in zip(self.labels, self.scores))
        where = f"{self.source!r}, " if self.source else ""
        return f"VideoClassification({where}{self.frames} frames, {self.clips} clips, {{{top}}})"
