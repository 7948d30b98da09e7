"""One error policy: library code raises these; the CLI prints one line and exits 1; the ROS
node logs and keeps running. Messages name the file or field and what was expected."""


class TprVoError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(TprVoError):
    """A configuration key or value is wrong (unknown key, out of range, wrong type)."""


class DataError(TprVoError):
    """An input file or message is missing or malformed (calib, poses, images, bags)."""


class BackendUnavailableError(TprVoError):
    """A feature backend cannot run here (library missing, no GPU, model file missing)."""


class TrackingError(TprVoError):
    """The frontend could not estimate a pose for this frame (handled inside the frontend)."""
