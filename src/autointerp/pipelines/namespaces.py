"""Per-hookpoint namespaces, built from the ``hookpoints`` parameter of the run."""

from __future__ import annotations

import re

from autointerp.hooks import run_parameters


def namespace(hookpoint: str) -> str:
    """Kedro namespace of a hookpoint: ``layers.6.mlp`` -> ``layers_6_mlp``."""
    return re.sub(r"[^0-9A-Za-z_]", "_", hookpoint)


def configured_hookpoints() -> list[str]:
    return list((run_parameters().get("hookpoints") or {}).keys())
