"""Errors that a user can act on: each names the file or config key and the expected value."""


class PipelineError(Exception):
    """Base class: bad input detected before (or instead of) expensive work."""


class ConfigError(PipelineError):
    """A config value is missing, of the wrong type or inconsistent with another."""


class DataError(PipelineError):
    """An input file is missing, empty or malformed."""


class ResourceError(PipelineError):
    """The machine lacks what the stage was asked to use (GPU, disk space)."""
