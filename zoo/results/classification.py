"""`Classification`: the top-k result of an image or sequence classifier."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Classification"]


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one input, best first.

    Attributes:
        labels: class labels, best first (the index as text when the model has no labels).
        scores: softmax probabilities, descending.
        indices: class indices into the model's output.
        source: where the input came from (a path, or `<input 3>`), when known.
    """

    labels: tuple[str, ...]
    scores: tuple[float, ...]
    indices: tuple[int, ...]
    source: str | None = None

    @property
    def label(self) -> str:
        """The top-1 label."""
        return self.labels[0]

    @property
    def score(self) -> float:
        """The top-1 score."""
        return self.scores[0]

    @property
    def index(self) -> int:
        """The top-1 class index."""
        return self.indices[0]

    def __len__(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source and a list of `{label, index, score}`, best first."""
        return {
            "source": self.source,
            "top": [
                {"label": label, "index": index, "score": score}
                for label, index, score in zip(self.labels, self.indices, self.scores)
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        top = ", ".join(f"{label!r}: {score:.3f}" for label, score in zip(self.labels, self.scores))
        where = f"{self.source!r}, " if self.source else ""
        return f"Classification({where}{{{top}}})"
