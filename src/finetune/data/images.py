"""Image classification data: labelled images from a ``Source`` (the packaged digits, a folder with one subfolder
per class, a CSV/JSONL of paths and labels, or a hub dataset), turned into ``pixel_values`` on the fly by the
model's image processor, with switchable training augmentation (random resized crop, horizontal flip). Nothing is
cached: decoding and resizing a batch costs less than a cache of every augmented view would."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from finetune.data.base import TaskDataModule
from finetune.data.preprocess import arrange_splits, cap_splits
from finetune.data.sources import build_source
from finetune.errors import UserError
from finetune.trainer.instantiate import plain

if TYPE_CHECKING:
    from datasets import DatasetDict
    from PIL.Image import Image

log = logging.getLogger(__name__)


class ImageClassificationDataModule(TaskDataModule):
    """Images and class labels; batches of ``pixel_values`` and ``labels``.

    Args:
        dataset: the hub name of ``HubImages``, the folder of ``ImageFolder``, a name for the summary otherwise.
        source: the ``Source`` class (dotted path, ``finetune.data.image_sources``); it takes the settings below
            that it declares.
        processor: the model's image processor (hub name, folder, ``packaged:`` or ``builtin:`` name); the data
            options set it to ``${model.net.pretrained}``, as text data sets its tokenizer.
        train_file: a CSV or JSONL of ``image_column`` (a path, relative to the file) and ``label_column``;
            ``validation_file`` and ``test_file`` are optional.
        image_column: the image (or its path); ``label_column`` the class name.
        label_names: class names in id order; None: the sorted names found in training.
        augment: training views get a random resized crop (``crop_scale`` of the area) and, with ``flip``, a
            random horizontal flip; validation, test and predict see the processor's plain transform.
        test_fraction: share of train held out as the test set (seeded) when there is no test split.
        main_metric: the metric that checkpointing, early stopping and sweeps follow (``val/<main_metric>``).
        **common: the loader and split settings of ``TaskDataModule``.
    """

    run_settings: ClassVar[tuple[str, ...]] = ("processor",)

    def __init__(
        self,
        dataset: str,
        processor: str,
        source: str = "finetune.data.image_sources.ImageFolder",
        train_file: str | None = None,
        validation_file: str | None = None,
        test_file: str | None = None,
        image_column: str = "image",
        label_column: str = "label",
        label_names: list[str] | None = None,
        augment: bool = True,
        crop_scale: list[float] | None = None,
        flip: bool = False,
        test_fraction: float = 0.1,
        main_metric: str = "acc",
        **common: Any,
    ) -> None:
        label_names, crop_scale = plain(label_names), plain(crop_scale) or [0.7, 1.0]
        super().__init__(**common)
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise UserError(f"data.crop_scale must be [low, high] with 0 < low <= high <= 1, got {crop_scale}")
        self.source = build_source(source, self.hparams)
        self.label_names: list[str] = []
        self._processor = None

    # ---- the task's data
    def labelled_splits(self) -> tuple[DatasetDict, list[str]]:
        """Train, validation and test images with class ids, split (seeded) and capped; images not decoded."""
        hp = self.hparams
        raw = self.source.load()
        names = list(hp.label_names or sorted({str(label) for label in raw["train"]["label"]}))
        if len(names) < 2:
            raise UserError(f"image classification needs at least 2 classes; the training data has {names}")
        ids = {name: i for i, name in enumerate(names)}
        for split, data in raw.items():
            unknown = next((str(x) for x in data["label"] if str(x) not in ids), None)
            if unknown is not None:
                raise UserError(f"label '{unknown}' in the {split} split is not a class of training {names}; fix "
                                "it, or list every class in data.label_names")  # fmt: skip
        raw = {s: d.map(lambda row: {"label": ids[str(row["label"])]}) for s, d in raw.items()}
        splits = arrange_splits(raw, "test", hp.val_fraction, hp.seed, test_fraction=hp.test_fraction)
        return cap_splits(splits, hp.max_train_samples, hp.max_eval_samples), names

    def build(self) -> tuple[DatasetDict, list[str]]:
        return self.labelled_splits()

    def read_labels(self, labels: Any) -> None:
        self.label_names = list(labels)

    def describe_labels(self) -> str:
        return f"{len(self.label_names)} classes {self.label_names}"

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The class names (their count sizes the head); the network's image size and channels."""
        return {"label_names": self.label_names, "problem_type": "single_label_classification"}

    @property
    def module_kwargs(self) -> dict[str, Any]:
        metrics = ["acc", "f1", *(["top5"] if len(self.label_names) > 5 else [])]
        return {"test_sets": self.test_sets, "main_metric": self.hparams.main_metric, "metrics": metrics}

    # ---- pixels
    @property
    def processor(self) -> Any:
        """The image processor, loaded once."""
        if self._processor is None:
            self._processor = load_image_processor(self.hparams.processor)
        return self._processor

    def check_settings(self) -> None:
        self.processor  # noqa: B018 - a processor that does not load is a one-line error before any work

    def check_network(self, config: Any) -> str:
        """The processor's output fits the network: its size where the network has a fixed one (ViT's
        positions), and three channels."""
        size = processed_size(self.processor)
        wanted = getattr(config, "image_size", None)
        if isinstance(wanted, int) and size is not None and size != (wanted, wanted):
            raise UserError(f"data.processor={self.hparams.processor} makes {size[0]}x{size[1]} images but the network "
                            f"takes {wanted}x{wanted}; use the processor of model.net.pretrained")  # fmt: skip
        if getattr(config, "num_channels", 3) != 3:
            raise UserError(f"the network takes {config.num_channels} channels; the images are RGB (3)")
        return f"images {size[0]}x{size[1]} RGB" if size else "images at the processor's size"

    def card_limits(self) -> list[str]:
        size = processed_size(self.processor)
        resized = f"resized to {size[0]}x{size[1]} pixels" if size else "resized by the processor"
        return [f"Images are converted to RGB and {resized}; detail finer than that is lost."]

    def collator(self, pad_to_multiple_of: int | None) -> Any:
        return ImageBatch(self.processor)

    def split_collator(self, split: str) -> Any:
        hp = self.hparams
        augment = hp.augment and split == "train"
        return ImageBatch(self.processor, tuple(hp.crop_scale) if augment else None, augment and hp.flip)

    @property
    def prediction_column(self) -> str:
        return self.hparams.image_column

    def prediction_features(self, rows: list[dict[str, Any]], column: str | None = None) -> list[dict[str, Any]]:
        """Each row's image path (``column``, else ``image_column``), opened and checked; unreadable ones get an
        error. ``inputs`` is the image (the collator makes pixels)."""
        from finetune.data.image_sources import open_image
        from finetune.data.prediction import check_columns, is_empty

        column = column or self.hparams.image_column
        check_columns(rows, [column])
        features = []
        for row in rows:
            if is_empty(row.get(column)):
                features.append({"error": f"empty image path in '{column}'"})
                continue
            try:
                features.append({"inputs": {"image": open_image(str(row[column]))}, "extra": {}})
            except UserError as error:
                features.append({"error": str(error)})
        return features


class ImageBatch:
    """A list of ``{"image", "label"}`` rows to ``{"pixel_values", "labels"}``: each image as RGB, cropped at
    random (``crop_scale``) and flipped (``flip``) for training, then the processor's resize and normalisation.
    Randomness comes from torch's global generator, which exact resume restores."""

    def __init__(self, processor: Any, crop_scale: tuple[float, float] | None = None, flip: bool = False) -> None:
        self.processor, self.crop_scale, self.flip = processor, crop_scale, flip

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        images = [self._view(row["image"].convert("RGB")) for row in rows]
        batch = {"pixel_values": self.processor(images=images, return_tensors="pt")["pixel_values"]}
        if rows and "label" in rows[0]:
            batch["labels"] = torch.tensor([int(row["label"]) for row in rows])
        return batch

    def _view(self, image: Image) -> Image:
        from PIL import Image as PILImage

        if self.crop_scale is not None:
            image = random_resized_crop(image, self.crop_scale)
        if self.flip and torch.rand(()) < 0.5:
            image = image.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
        return image


def random_resized_crop(image: Image, scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image:
    """A random crop of ``scale`` of the area and an aspect ratio in ``ratio`` (the Inception crop); the
    processor resizes it afterwards."""
    width, height = image.size
    area = width * height * float(torch.empty(()).uniform_(*scale))
    aspect = math.exp(float(torch.empty(()).uniform_(math.log(ratio[0]), math.log(ratio[1]))))
    w = min(width, max(1, round(math.sqrt(area * aspect))))
    h = min(height, max(1, round(math.sqrt(area / aspect))))
    left = int(torch.randint(0, width - w + 1, ()))
    top = int(torch.randint(0, height - h + 1, ()))
    return image.crop((left, top, left + w, top + h))


def load_image_processor(name: str) -> Any:
    """The image processor of a model (hub name, folder, ``packaged:`` or ``builtin:`` name)."""
    from transformers import AutoImageProcessor

    from finetune.hf.pretrained import resolve_pretrained

    try:
        return AutoImageProcessor.from_pretrained(resolve_pretrained(str(name)))
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0].split(". ")[0]  # transformers adds hub advice that does not apply
        raise UserError(f"could not load the image processor of '{name}' ({reason}); pick an image model "
                        "(model=vit_tiny, or experiment=digits) or point data.processor at a folder holding "
                        "preprocessor_config.json") from None  # fmt: skip


def processed_size(processor: Any) -> tuple[int, int] | None:
    """The (height, width) a processor's output has, when it resizes or crops to a fixed size."""
    for size in (getattr(processor, "crop_size", None), getattr(processor, "size", None)):
        height, width = (dict(size).get(k) if size is not None else None for k in ("height", "width"))
        if height and width:
            return int(height), int(width)
    return None
