"""Entity-level precision, recall and F1 for BIO tagging, computed by seqeval (the reference implementation)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

IGNORED = -100


class EntityScores(Metric):
    """seqeval's entity scores (default conlleval-style matching) over every sentence seen.

    Keeps each sentence's predicted and gold tag ids (positions labelled ``IGNORED`` dropped) as concatenated
    tensors with their lengths, so processes gather their parts under DDP; ``compute`` turns them into tag names
    and asks seqeval. Returns ``precision``, ``recall``, ``f1`` (micro over entities) and ``f1_<type>`` per type.

    Args:
        tag_names: the tag of each id (``O``, ``B-person``, ``I-person`` ...).
    """

    full_state_update = False

    def __init__(self, tag_names: list[str]) -> None:
        super().__init__()
        self.tag_names = list(tag_names)
        self.types = sorted({name[2:] for name in self.tag_names if name[:2] in ("B-", "I-", "E-", "S-")})
        for name in ("predicted", "gold", "lengths"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """``predictions`` and ``targets``: (batch, tokens) tag ids, ``IGNORED`` where no word starts."""
        kept = targets != IGNORED
        self.predicted.append(predictions[kept])
        self.gold.append(targets[kept])
        self.lengths.append(kept.sum(dim=1))

    def compute(self) -> dict[str, torch.Tensor]:
        from seqeval.metrics import classification_report

        predicted, gold, lengths = (_cat(getattr(self, n)) for n in ("predicted", "gold", "lengths"))
        sentences = torch.split(torch.arange(len(gold)), lengths.tolist())
        names = self.tag_names
        y_pred = [[names[i] for i in predicted[s].tolist()] for s in sentences]
        y_true = [[names[i] for i in gold[s].tolist()] for s in sentences]
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
        overall = report["micro avg"]
        scores = {"precision": overall["precision"], "recall": overall["recall"], "f1": overall["f1-score"]}
        scores |= {f"f1_{kind}": report.get(kind, {}).get("f1-score", 0.0) for kind in self.types}
        return {k: torch.tensor(float(v)) for k, v in scores.items()}


def _cat(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    if isinstance(state, torch.Tensor):  # already gathered across processes
        return state
    return torch.cat(state) if state else torch.zeros(0, dtype=torch.long)
