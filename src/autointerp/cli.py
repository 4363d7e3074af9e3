"""Project CLI: ``kedro run`` with user mistakes reported as one clear line and exit status 2."""

from __future__ import annotations

import logging
import sys

import click
from kedro.framework.cli.project import run as kedro_run

from autointerp.errors import find_user_error


class _QuietUserErrors(logging.Filter):
    """Drop the traceback Kedro logs for a node that failed on a user's mistake."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and find_user_error(record.exc_info[1]) is not None:
            record.exc_info = None
            record.exc_text = None
        return True


def _run(**kwargs):
    for name in ("kedro", "kedro.runner", "kedro.framework.session", ""):
        logging.getLogger(name).addFilter(_QuietUserErrors())
    try:
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
