"""Fine-tuning: `finetune` (also `Model.finetune`), its `TrainConfig`, `History` and head surgery.

```python
import zoo
model = zoo.load("resnet18").finetune("data/train", "data/val", epochs=3, out="runs/r18")
model.history.best        # EpochMetrics of the best epoch
```

Importing this package never imports torch.
"""

from zoo.train.config import STRATEGIES, TrainConfig
from zoo.train.finetune import finetune
from zoo.train.heads import Head, find_head, replace_head
from zoo.train.history import EpochMetrics, History

__all__ = ["STRATEGIES", "EpochMetrics", "Head", "History", "TrainConfig", "find_head", "finetune", "replace_head"]
