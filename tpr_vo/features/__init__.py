"""Feature backends behind one interface: `create_backend(config.features).extract(image)`."""

from tpr_vo.features.base import FeatureBackend, create_backend

__all__ = ["FeatureBackend", "create_backend"]
