"""Where labelled images come from (``data.source``): scikit-learn's digits (offline, real), a folder with one
subfolder per class, a CSV or JSONL of image paths and labels, or a hub image dataset. Each gives splits with an
``image`` column (decoded on access) and a ``label`` column of class names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.data.sources import Source, load_hub, user_files
from finetune.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset
    from PIL.Image import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_split(images: list[Any], labels: list[str]) -> Dataset:
    """A split of images (PIL images or paths, decoded lazily) and their class names."""
    from datasets import Dataset, Features, Image, Value

    features = Features({"image": Image(), "label": Value("string")})
    return Dataset.from_dict({"image": images, "label": labels}, features=features)


def open_image(path: str) -> Image:
    """The image at ``path``, decoded now (a missing or broken file is one line)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(Path(path).expanduser()) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError) as error:
        raise UserError(f"cannot read the image {path}: {type(error).__name__}") from None


@dataclass
class Digits(Source):
    """scikit-learn's 1,797 handwritten digits (UCI optdigits, 8x8 pixels in 17 grey levels), as greyscale images
    (``data=digits``); the data module splits them, seeded."""

    def load(self) -> dict[str, Dataset]:
        import numpy as np
        from PIL import Image
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
        images = [Image.fromarray(array, mode="L") for array in pixels]
        return {"train": image_split(images, [str(int(t)) for t in digits.target])}

    def identity(self) -> dict[str, Any]:
        import sklearn

        return {"source": type(self).__name__, "sklearn": sklearn.__version__}


@dataclass
class ImageFolder(Source):
    """``dataset`` is a folder with ``train/`` (and optionally ``validation/``, ``test/``), each with one
    subfolder per class; or a folder of class subfolders alone (then everything is training data)."""

    dataset: str

    def load(self) -> dict[str, Dataset]:
        root = Path(self.dataset).expanduser()
        if not root.is_dir():
            raise UserError(f"data.dataset={self.dataset} is not a folder; give a folder with one subfolder per "
                            "class (or train/ and test/ folders of them)")  # fmt: skip
        splits = {s: root / s for s in ("train", "validation", "test") if (root / s).is_dir()} or {"train": root}
        return {split: self._split(folder) for split, folder in splits.items()}

    def files(self) -> dict[str, Path]:
        return {"folder": Path(self.dataset).expanduser()}

    @staticmethod
    def _split(folder: Path) -> Dataset:
        paths = sorted(p for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UserError(f"{folder} holds no images in class subfolders ({folder}/<class>/<image>.png)")
        return image_split([str(p) for p in paths], [p.parent.name for p in paths])


@dataclass
class ImageFiles(Source):
    """A CSV or JSONL file per split with an image path column (relative to the file) and a label column."""

    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    image_column: str = "image"
    label_column: str = "label"

    def files(self) -> dict[str, Path]:
        return user_files(self.train_file, self.validation_file, self.test_file)

    def load(self) -> dict[str, Dataset]:
        from finetune.use.inputs import read_rows

        splits = {}
        for split, path in self.files().items():
            rows = read_rows(str(path), None, self.image_column)
            missing = [c for c in (self.image_column, self.label_column) if rows and c not in rows[0]]
            if missing:
                raise UserError(f"{path} has no column {missing[0]}; set data.image_column and data.label_column")
            images = [str((path.parent / str(row[self.image_column])).expanduser()) for row in rows]
            for image in images:
                if not Path(image).is_file():
                    raise UserError(f"{path}: the image {image} does not exist")
            splits[split] = image_split(images, [str(row[self.label_column]) for row in rows])
        return splits


@dataclass
class HubImages(Source):
    """A hub image dataset with an image column and a class-label column (``data.dataset=<name>``)."""

    dataset: str
    image_column: str = "image"
    label_column: str = "label"

    def load(self) -> dict[str, Dataset]:
        raw = load_hub(self.dataset, None)
        splits = {}
        for split, data in raw.items():
            names = getattr(data.features.get(self.label_column), "names", None)
            labels = [names[i] if names else str(i) for i in data[self.label_column]]
            splits[split] = image_split(list(data[self.image_column]), labels)
        return splits
