"""Project CLI: ``kedro run`` with user mistakes reported as one clear line and exit status 2."""

from __future__ import annotations

import difflib
import logging
import sys

import click
from kedro.framework.cli.project import run as kedro_run

from autointerp.errors import ConfigError, find_user_error


class _QuietUserErrors(logging.Filter):
    """Drop the traceback Kedro logs for a node that failed on a user's mistake."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and find_user_error(record.exc_info[1]) is not None:
            record.exc_info = None
            record.exc_text = None
        return True


def check_pipeline_names(names) -> None:
    """Refuse a ``--pipelines`` name that is not registered, with the valid names (before any work)."""
    import importlib
    import pkgutil

    from kedro.framework.project import PACKAGE_NAME, pipelines

    names = [n for n in names or [] if n]
    package = importlib.import_module(f"{PACKAGE_NAME}.pipelines")
    stages = {m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg} | {"__default__"}
    if all(n in stages for n in names):
        return
    valid = sorted(pipelines)  # names the registry adds beyond the stage folders
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"no pipeline named '{name}' (--pipelines).{hint} Valid names: {', '.join(valid)}.")


def _run(**kwargs):
    for name in ("kedro", "kedro.runner", "kedro.framework.session", ""):
        logging.getLogger(name).addFilter(_QuietUserErrors())
    try:
        check_pipeline_names(list(kwargs.get("pipelines") or []) + [kwargs.get("pipeline") or ""])
        return kedro_run.callback(**kwargs)
    except Exception as exc:  # noqa: BLE001
        err = find_user_error(exc)
        if err is None:
            raise
        click.secho(f"Error: {err}", fg="red", err=True)
        sys.exit(2)


@click.group(name="autointerp")
def cli():
    """autointerp project commands."""


cli.add_command(click.Command("run", params=kedro_run.params, callback=_run, help=kedro_run.help))
