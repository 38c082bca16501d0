"""Errors a user can cause. The CLI turns each into one line on stderr and exit code 2."""

import importlib.util


class IcsError(Exception):
    """Bad input: the message names the problem and what is allowed."""


class ConfigError(IcsError):
    """An option value or combination of options that cannot run."""


class DataError(IcsError):
    """A dataset that cannot be loaded (missing files, failed download, bad format)."""


def installed(package: str) -> bool:
    """Whether an optional package is installed (without importing it: Ray and TensorBoard take seconds)."""
    return importlib.util.find_spec(package) is not None


def require(package: str, label: str, what: str, present: bool | None = None) -> None:
    """One line naming the fix when the optional `package` (the extra of ics-cli of that name) is missing
    (`present`: whether it is, when the caller knows better)."""
    if not (installed(package) if present is None else present):
        raise IcsError(f"{what} needs {label}, which is not installed: {install_line(package)}")


def install_line(extra: str) -> str:
    """How to install an optional extra: the published package itself, or the extra from a checkout
    (ics-cli is not on PyPI, so `pip install 'ics-cli[...]'` would name nothing)."""
    return f"pip install {extra} (or, in a checkout of ics: pip install -e '.[{extra}]')"
