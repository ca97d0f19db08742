"""Read a SAM 2 checkpoint file, recognise its variant and build the model.

Official files are ``torch.save({"model": state_dict})``; they are read with
``weights_only=True`` so no arbitrary code is ever unpickled. The variant is
recognised from the parameter names and shapes, never from the file name.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError
from .config import VARIANTS, Sam2Config
from .sam2 import Sam2Model

#: Optional entry of a checkpoint dict holding a :meth:`Sam2Config.to_dict`,
#: for architectures that are not one of the eight official variants.
CONFIG_KEY = "napari_sam2_config"


def _corrupt(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} could not be read as a PyTorch checkpoint ({type(exc).__name__}: {exc}). The file is "
        f"probably truncated or corrupt: download it again (delete it first if it is in the cache)."
    )


def _not_a_checkpoint(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a PyTorch checkpoint (it is neither a torch.save zip archive nor a pickle), so it "
        f"cannot be a SAM 2 model. Check that you picked the right file: SAM 2 weights are Meta's .pt files, "
        f"or pass a model name such as 'sam2.1_hiera_tiny' to download them."
    )


def _looks_like_torch_file(path: Path) -> bool:
    """Whether the file starts like something ``torch.save`` writes (a zip holding ``data.pkl``, or a
    pickle); a damaged torch file still does, random bytes, text or another zip do not."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            return True  # a zip cut short: its directory at the end is missing
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5  # pickle protocol 2..5


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], Sam2Config | None]:
    """Load a checkpoint file -> (state dict on CPU, embedded config or None)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint file at {path}. Check the path, or pass a model name "
                              f"such as 'sam2.1_hiera_tiny' to download the official weights.")
    if path.suffix == ".safetensors":
        raise CheckpointError(f"{path.name} is a safetensors file (the Hugging Face Transformers port, "
                              f"with renamed keys). Use Meta's native .pt checkpoint instead.")
    if not _looks_like_torch_file(path):
        raise _not_a_checkpoint(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"{path} holds Python objects that cannot be loaded safely (only tensors are read, never "
                f"arbitrary code). Official SAM 2 checkpoints contain only tensors; this is not one of them."
            ) from exc
        raise _corrupt(path, exc) from exc
    except Exception as exc:  # zip/pickle/EOF errors of a damaged or foreign file
        raise _corrupt(path, exc) from exc
    config = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        if isinstance(obj.get(CONFIG_KEY), dict):
            config = Sam2Config.from_dict(obj[CONFIG_KEY])
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not contain a SAM 2 state dict (expected a dict with a "
                              f"'model' entry of tensors, as in Meta's released .pt files).")
    return obj, config


def detect_config(state: dict[str, torch.Tensor]) -> Sam2Config:
    """Recognise which official variant a state dict belongs to.

    Looks at the Hiera width and depth and at the SAM 2.1-only parameters
    (EdgeTAM: a RepViT trunk and a spatial perceiver); raises
    :class:`CheckpointError` when the keys are not SAM 2's.
    """
    if "image_encoder.trunk.body.stem.conv1.c.weight" in state and "spatial_perceiver.latents" in state:
        return VARIANTS["edgetam"]  # every shape is then checked by build_model
    patch = state.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None or "sam_mask_decoder.iou_token.weight" not in state:
        hint = ""
        if any(k.startswith("image_encoder.blocks.") for k in state):
            hint = " It looks like an original Segment Anything (SAM 1) checkpoint."
        raise CheckpointError("This file is not a SAM 2 checkpoint: it lacks the Hiera image encoder and "
                              "SAM 2 mask decoder parameters." + hint + " Use one of Meta's SAM 2 / 2.1 .pt files.")
    version = "2.1" if "no_obj_embed_spatial" in state else "2.0"
    n_blocks = len({k.split(".")[3] for k in state if k.startswith("image_encoder.trunk.blocks.")})
    width = patch.shape[0]
    for cfg in VARIANTS.values():
        if cfg.repvit is not None:
            continue
        if cfg.version == version and cfg.hiera.embed_dim == width and sum(cfg.hiera.stages) == n_blocks:
            return cfg
    raise CheckpointError(
        f"Unrecognised SAM 2 variant (Hiera width {width}, {n_blocks} blocks, SAM {version}). Known variants: "
        f"{', '.join(VARIANTS)}. A custom architecture needs its config stored under '{CONFIG_KEY}'."
    )


def build_model(state: dict[str, torch.Tensor], cfg: Sam2Config | None = None) -> Sam2Model:
    """Instantiate the model for ``state`` and load it strictly (CPU, float32)."""
    cfg = cfg or detect_config(state)
    model = Sam2Model(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise CheckpointError(f"The checkpoint does not match {cfg.name}: {'; '.join(parts)}. The file may be "
                              f"from another model or modified; use an unchanged official SAM 2 / 2.1 checkpoint.")
    model.load_state_dict(state, strict=True)
    return model.eval()
