"""User-facing errors: one clear message naming the file or key and the fix."""

from __future__ import annotations


class AutointerpError(Exception):
    """A mistake in the user's input or configuration.

    The command line prints only the message (no traceback) and exits with status 2.
    """


class ConfigError(AutointerpError):
    """A configuration key or value is wrong."""


def find_user_error(exc: BaseException | None) -> AutointerpError | None:
    """Return the AutointerpError behind ``exc`` (Kedro wraps node errors), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AutointerpError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
