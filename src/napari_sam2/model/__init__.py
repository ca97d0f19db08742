"""SAM 2 / 2.1 in plain PyTorch, with the parameter layout of Meta's checkpoints."""

from .config import VARIANTS, HieraConfig, Sam2Config
from .sam2 import ImageEmbedding, Sam2Model

__all__ = ["VARIANTS", "HieraConfig", "ImageEmbedding", "Sam2Config", "Sam2Model"]
