"""The LightningModules: the shared loop (``FineTuneModule``) and one small subclass per task."""

from finetune.models.classifier import SequenceClassifier
from finetune.models.image_classifier import ImageClassifier
from finetune.models.token_classifier import TokenClassifier

__all__ = ["ImageClassifier", "SequenceClassifier", "TokenClassifier"]
