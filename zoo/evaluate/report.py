"""What every evaluation result shares: its JSON form and `save(folder)`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["Report"]


class Report:
    """Mixin of the frozen evaluation results: `to_json` from their `to_dict`, and `save(folder)` writing
    `metrics.json`, plus `confusion_matrix.png` for a result that draws one (`plot()`)."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def save(self, folder: str | Path) -> Path:
        """Write `metrics.json` (and `confusion_matrix.png` when the result draws one) into `folder`; returns
        the picture's path, else the JSON's."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        path = target / "metrics.json"
        path.write_text(self.to_json(indent=2) + "\n")
        plot = getattr(self, "plot", None)
        if plot is None:
            return path
        from zoo.charts import save_png

        return save_png(plot(), target / "confusion_matrix.png")
