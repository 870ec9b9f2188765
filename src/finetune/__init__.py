"""Fine-tune Hugging Face models with Hydra configs and a Lightning loop.

Importing the package is cheap on purpose: config composition, ``--help`` and ``--cfg`` never import torch.
"""

__version__ = "0.1.0"
