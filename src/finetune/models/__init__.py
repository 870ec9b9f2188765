"""Models: builders for Hugging Face networks and the LightningModule that trains them."""

from finetune.models.builders import pretrained_classifier, resolve_pretrained, tiny_random_classifier
from finetune.models.classifier import SequenceClassifier

__all__ = ["SequenceClassifier", "pretrained_classifier", "resolve_pretrained", "tiny_random_classifier"]
