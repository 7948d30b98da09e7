"""tpr_vo: visual odometry with TPR-trained local features.

Public names are re-exported lazily so that `import tpr_vo` stays light (no torch, no cv2).
"""

__version__ = "0.1.0"

__all__ = ["VisualOdometry", "VoConfig", "load_config", "TprVoError", "__version__"]


def __getattr__(name: str):
    if name == "VisualOdometry":
        from tpr_vo.frontend import VisualOdometry

        return VisualOdometry
    if name in ("VoConfig", "load_config"):
        from tpr_vo import config

        return getattr(config, name)
    if name == "TprVoError":
        from tpr_vo.errors import TprVoError

        return TprVoError
    raise AttributeError(name)
