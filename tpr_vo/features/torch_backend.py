"""TPR features through PyTorch (CUDA when available, else CPU): the reference the exported
backends are parity-tested against."""

from __future__ import annotations

import logging

import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import BackendUnavailableError
from tpr_vo.features.learned import LearnedBackend, resolve_model_path

log = logging.getLogger(__name__)


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("PyTorch is not installed: pip install torch") from exc
    return torch


class TorchBackend(LearnedBackend):
    """Loads `cfg.model_path` (.pt checkpoint; "" = shipped) unless a `model` is given."""

    def __init__(self, cfg: FeaturesConfig, device: str | None = None, model=None):
        super().__init__(cfg)
        torch = import_torch()
        self._torch = torch
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if model is None:
            from tpr_vo.features.model import load_model

            path = resolve_model_path(cfg.model_path, ".pt")
            model = load_model(path, map_location=self.device)
            self.model_path = path
        self._model = model.to(self.device).eval()
        self.name = f"tpr/torch-{self.device.type}"

    def _infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            scores, descriptors = self._model(torch.from_numpy(tensor).to(self.device))
        return scores.float().cpu().numpy(), descriptors.float().cpu().numpy()
