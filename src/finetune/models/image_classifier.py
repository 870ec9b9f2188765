"""Image classification: the sequence classifier's loop, objective and metrics on ``pixel_values``, exported for
``pipeline("image-classification")``."""

from __future__ import annotations

from finetune.models.classifier import SequenceClassifier


class ImageClassifier(SequenceClassifier):
    """Fine-tunes an ``AutoModelForImageClassification`` network. Everything but what a user does with the
    result is the sequence classifier's: cross-entropy (label smoothing), ``acc``, macro ``f1`` and, with more than
    five classes, ``top5`` (the data module asks for it), class probabilities from ``predict.py``.
    peft has no task type for images (``conf/task/image_classification.yaml``): an adapter wraps the network in
    its generic ``PeftModel``, the head still trained and saved in full."""

    pipeline_task = "image-classification"
    card_usage = (
        'pipe = pipeline("image-classification", model="{folder}", top_k=None)\n'
        'pipe("{example}")   # every class with its probability (a path, a URL or a PIL image)'
    )
    card_example = "image.png"
