"""`Model.push_to_hub`: upload a zoo checkpoint folder to a Hugging Face Hub model repo, with a model card.

The folder is what `Model.save(folder)` writes (`model.safetensors` + `config.json`, huggingface_hub's
`PyTorchModelHubMixin` layout) plus a `README.md` model card listing the task, labels, base model and
training summary. Any Hub plugin that resolves `hf:org/repo` names (zoo's own `hf` plugin) loads it back:
`zoo.load("hf:org/repo")`. huggingface_hub is imported only here, when uploading; `HF_ENDPOINT` selects
another Hub.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import settings
from zoo.errors import DownloadError, OfflineError, UnsupportedError

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["HubUpload", "model_card", "push_to_hub"]

#: Labels listed in full on the model card; longer label sets are shortened.
MAX_CARD_LABELS = 50


@dataclass(frozen=True)
class HubUpload:
    """A checkpoint pushed to the Hub.

    Attributes:
        repo_id: `org/repo`.
        commit: the commit the upload made.
        url: the commit's page.
    """

    repo_id: str
    commit: str
    url: str

    @property
    def name(self) -> str:
        """The zoo name of exactly this upload: `hf:org/repo@<commit>`."""
        return f"hf:{self.repo_id}@{self.commit}"


def push_to_hub(
    model: Model,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> HubUpload:
    """Upload `model` as a zoo checkpoint folder with a model card to Hub repo `repo_id` (created if needed).

    Args:
        model: the model.
        repo_id: `org/repo` (or `repo` under your user).
        token: a Hub token (default: huggingface_hub's login or `HF_TOKEN`).
        private: create the repo private (an existing repo keeps its visibility).
        revision: the branch to commit to (default `main`).
        commit_message: the commit's summary.
        create_pr: open a pull request instead of committing to the branch.

    Returns:
        The upload: `zoo.load(upload.name)` loads exactly this commit.

    Raises:
        OfflineError: `ZOO_OFFLINE=1` (or `HF_HUB_OFFLINE=1`).
        UnsupportedError: huggingface_hub is not installed.
        DownloadError: the Hub refused the upload or could not be reached.
    """
    if settings.offline() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise OfflineError(f"Offline (ZOO_OFFLINE or HF_HUB_OFFLINE): cannot push {model.name} to {repo_id}.")
    hub = _hub()
    api = hub.HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        folder = Path(tmp) / "checkpoint"
        model.save(folder)
        _card(model, repo_id).save(folder / "README.md")
        operations = [
            hub.CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in sorted(folder.iterdir())
        ]
        try:
            repo = api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.create_commit(
                repo.repo_id,
                operations=operations,
                commit_message=commit_message or f"Upload {model.name} with zoo",
                revision=revision,
                create_pr=create_pr,
            )
        except Exception as exc:  # huggingface_hub / httpx errors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DownloadError(f"Pushing {model.name} to {repo_id} failed: {type(exc).__name__}: {first}") from exc
    return HubUpload(repo.repo_id, str(info.oid), str(info.commit_url))


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise UnsupportedError('push_to_hub needs huggingface_hub: pip install "zoo-sdk[hf]".') from None
    return huggingface_hub


def model_card(model: Model, repo_id: str) -> str:
    """The README.md of an uploaded checkpoint: metadata header, what it is, how to load it.

    Written with huggingface_hub's `ModelCard` / `ModelCardData`; the Hub `pipeline_tag` is the one the
    model's task declares (`Task.hub_pipeline`).
    """
    return str(_card(model, repo_id))


def _card(model: Model, repo_id: str) -> Any:
    """The model card as a huggingface_hub `ModelCard`."""
    from zoo.registry import get_registry

    hub = _hub()
    spec = model.spec
    labels = list(model.labels or ())
    base = f"{spec.name}:{model.weights}" if model.weights else f"{spec.name} (random init)"
    data = hub.ModelCardData(
        library_name="zoo",
        tags=["zoo", spec.task, spec.plugin],
        pipeline_tag=get_registry().task_capabilities(spec.task, spec.plugin).hub_pipeline,
    )
    shown = ", ".join(labels[:MAX_CARD_LABELS]) + (
        f", … ({len(labels)} in all)" if len(labels) > MAX_CARD_LABELS else ""
    )
    lines = [
        f"# {repo_id.rsplit('/', 1)[-1]}",
        "",
        f"A [zoo](https://zoo-sdk.readthedocs.io) checkpoint of `{spec.plugin}/{spec.name}`.",
        "",
        f"- **Task:** {spec.task}",
        f"- **Base model:** {base}" + (f" (sha256 `{model.weights_sha256}`)" if model.weights_sha256 else ""),
        f"- **Labels ({len(labels)}):** {shown}" if labels else "- **Labels:** none",
        f"- **Builder arguments:** `{json.dumps(model.builder_kwargs, sort_keys=True, default=str)}`",
        "",
        "## Use",
        "",
        "```python",
        "import zoo",
        f'model = zoo.load("hf:{repo_id}")',
        "```",
    ]
    if model.training_summary:
        summary = json.dumps(model.training_summary, indent=2, sort_keys=True, default=str)
        lines += ["", "## Training", "", "```json", summary, "```"]
    return hub.ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")
