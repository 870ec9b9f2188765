"""Token classification (NER): a Hugging Face token classifier on the shared loop (``FineTuneModule``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from finetune.errors import UserError
from finetune.models.base import FineTuneModule
from finetune.models.contract import StepOutput
from finetune.models.entity_metrics import IGNORED, EntityScores
from finetune.models.net_builder import NetBuilder, built_for

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from transformers import PreTrainedModel

SCORES = ("precision", "recall", "f1")


class TokenClassifier(FineTuneModule):
    """Tags every word: cross-entropy over the sub-tokens that carry a label; entity precision, recall and F1
    (overall and ``f1_<type>``, by seqeval) and ``token_acc`` (accuracy over labelled sub-tokens).

    Args:
        net: a ``...ForTokenClassification`` network (or its ``NetBuilder``); its ``config.id2label`` (the builder's
            ``label_names``) names the tags.
        optimizer: a partial that takes parameter groups (see ``finetune.optim.optimizers.build_optimizer``).
        scheduler: a partial that takes the optimizer and ``num_training_steps``.
        label_smoothing: share of each token's target mass spread over all tags.
        loss: ``auto`` or ``cross_entropy`` (the only loss for tags).
        main_metric: the metric tracked as ``val/<name>_best`` (``f1``).
        **loop: the loop's options (``FineTuneModule``): test sets, non-finite-loss policy, compile, freezing.
    """

    def __init__(
        self,
        net: PreTrainedModel | NetBuilder,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        loss: str = "auto",
        main_metric: str = "f1",
        **loop: Any,
    ) -> None:
        check_loss(loss)
        self.tag_names = built_for(net)["label_names"]
        self.label_smoothing = label_smoothing
        super().__init__(net, optimizer, scheduler, main_metric, lower_is_better=main_metric == "loss", **loop)
        self.save_hyperparameters({"label_names": self.tag_names, "num_labels": len(self.tag_names)}, logger=False)

    pipeline_task = "token-classification"
    card_usage = (
        'pipe = pipeline("token-classification", model="{folder}", aggregation_strategy="first")\n'
        'pipe("{example}")   # entities with character offsets\n'
        '# scored as in training: pipe(words, is_split_into_words=True, aggregation_strategy="none"), '
        "each word's first sub-token"
    )
    card_example = "Ada Lovelace visited London with Charles Babbage"
    signature_keys = ("label_names",)

    @classmethod
    def card_purpose(cls, labels: list[str] | None) -> str:
        return "tags words with the entity types above"

    def build_metrics(self, prefix: str) -> MetricCollection:
        accuracy = MulticlassAccuracy(len(self.tag_names), average="micro", ignore_index=IGNORED)
        return MetricCollection({"token_acc": accuracy, "entity": EntityScores(self.tag_names)}, prefix=prefix)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tag logits (batch, tokens, tags) for a tokenized batch."""
        return self.net(**{k: v for k, v in batch.items() if k != "labels"}).logits

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        logits, labels = self(batch), batch["labels"]
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORED, label_smoothing=self.label_smoothing
        )
        return StepOutput(loss, logits.argmax(-1), labels, labels.shape[0])

    def prediction_outputs(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Tag probabilities (tokens, tags) per row, padding dropped (float32 softmax)."""
        probabilities = self(batch).float().softmax(-1).cpu()
        kept = batch["attention_mask"].bool().cpu()
        return [row[mask] for row, mask in zip(probabilities, kept, strict=True)]

    def prediction_record(self, output: torch.Tensor, extra: dict[str, Any]) -> dict[str, Any]:
        """Each word's tag (its first sub-token's, as in training and scoring) and the entities seqeval reads
        from them, with character offsets into the text and the mean probability of their words' tags."""
        from seqeval.metrics.sequence_labeling import get_entities

        first: dict[int, int] = {}
        for token, word in enumerate(extra["word_ids"]):
            if word is not None:
                first.setdefault(word, token)
        words = max(first) + 1 if first else 0  # a word with no token of its own (rare symbols) stays O
        tags, scores = ["O"] * words, [0.0] * words
        for word, token in first.items():
            value, index = output[token].max(-1)
            tags[word], scores[word] = self.tag_names[int(index)], float(value)
        spans, text, entities = extra["spans"], extra["text"], []
        for kind, start_word, end_word in get_entities(tags):
            start, end = spans[start_word][0], spans[end_word][1]
            score = sum(scores[start_word : end_word + 1]) / (end_word - start_word + 1)
            entities.append({"type": kind, "text": text[start:end], "start": start, "end": end, "score": score})
        record: dict[str, Any] = {"entities": entities, "tags": tags}
        if len(tags) < len(spans):  # words past data.max_length tokens: not tagged
            record["untagged_words"] = len(spans) - len(tags)
        return record

    @classmethod
    def logged_names(
        cls, label_names: list[str], test_sets: list[str], main_metric: str = "f1", loss: str = "auto"
    ) -> set[str]:
        """Every metric name this module logs: what ``monitor`` and ``optimized_metric`` may name."""
        check_loss(loss)
        types = sorted({name[2:] for name in label_names if name[:2] in ("B-", "I-", "E-", "S-")})
        metrics = [*SCORES, "token_acc", *(f"f1_{kind}" for kind in types)]
        return cls.loop_names(metrics, main_metric, test_sets)


def check_loss(loss: str) -> None:
    """Tags take cross-entropy only."""
    if loss not in ("auto", "cross_entropy"):
        raise UserError(f"model.loss={loss} does not apply to tags; use auto or cross_entropy")
