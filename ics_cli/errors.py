"""Errors a user can cause. The CLI turns each into one line on stderr and exit code 2."""


class IcsError(Exception):
    """Bad input: the message names the problem and what is allowed."""


class ConfigError(IcsError):
    """An option value or combination of options that cannot run."""


class DataError(IcsError):
    """A dataset that cannot be loaded (missing files, failed download, bad format)."""
