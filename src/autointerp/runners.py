"""Kedro runners of this project: :class:`DaskRunner` runs a pipeline's nodes on a Dask cluster.

    kedro run --runner autointerp.runners.DaskRunner

The scheduler comes from Dask's own configuration: ``DASK_SCHEDULER_ADDRESS=tcp://host:8786``
(or ``scheduler-address`` in a Dask config file); without one, a local cluster of this machine's
cores is started for the run. Each node becomes one task that waits for the tasks of the nodes it
depends on; independent nodes (the hookpoint namespaces of ``sample``, ``explain``, ``score``)
run at once on different workers. Nodes hand data to each other through the catalog's files, so
every worker must see the same data root (a shared filesystem) and the project installed; a
dataset that lives only in memory cannot cross workers and is refused before anything runs.
Node and dataset hooks do not run on the workers (as with Kedro's ParallelRunner); metrics go to
the run's MLflow run. torch on a worker uses ``AUTOINTERP_TORCH_THREADS`` threads (default: all
cores), whatever thread limit Dask sets.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import AbstractRunner

from .errors import ConfigError

log = logging.getLogger(__name__)


def _mlflow_run() -> tuple[str, str] | None:
    try:
        import mlflow
    except ImportError:
        return None
    run = mlflow.active_run()
    return (mlflow.get_tracking_uri(), run.info.run_id) if run is not None else None


def _node_catalog(catalog, node) -> DataCatalog:
    """The datasets of one node, in a catalog that travels to a worker (the run's catalog itself
    does not pickle)."""
    names = [*node.inputs, *node.outputs]
    return DataCatalog({name: catalog.get(name, fallback_to_runtime_pattern=True) for name in names})


def _run_node(node, catalog, package_name: str, is_async: bool, run_id: str | None, mlflow_run, *_dependencies):
    """One node on a worker: the project configured once per worker process, the run's MLflow run
    resumed so that metrics datasets log into it."""
    import contextlib

    from kedro.framework import project
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.runner.task import Task

    if project.PACKAGE_NAME != package_name:
        project.configure_project(package_name)
        import torch  # Dask limits a worker's libraries to one thread; a node uses the machine's cores

        torch.set_num_threads(int(os.environ.get("AUTOINTERP_TORCH_THREADS") or os.cpu_count() or 1))
    context = contextlib.nullcontext()
    if mlflow_run is not None:
        import mlflow

        mlflow.set_tracking_uri(mlflow_run[0])
        context = mlflow.start_run(run_id=mlflow_run[1]) if mlflow.active_run() is None else context
    with context:
        Task(
            node=node, catalog=catalog, hook_manager=_create_hook_manager(), is_async=is_async, run_id=run_id
        ).execute()
    return node.name


class DaskRunner(AbstractRunner):
    """Runs each node as a task on a Dask cluster (see the module's docstring)."""

    def __init__(self, address: str | None = None, is_async: bool = False):
        super().__init__(is_async=is_async)
        self._address = address

    def _get_executor(self, max_workers: int) -> Any:
        return None  # tasks are submitted to the Dask client directly

    def _client(self):
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError(
                "the Dask runner needs the packages dask and distributed: pip install 'autointerp[dask]'."
            ) from None
        return Client(self._address) if self._address else Client()

    def _run(self, pipeline, catalog, hook_manager=None, run_id: str | None = None) -> None:
        from distributed import as_completed
        from kedro.framework.project import PACKAGE_NAME

        nodes = pipeline.nodes
        produced = {o for n in nodes for o in n.outputs}
        in_memory = sorted(
            name
            for name in produced & {i for n in nodes for i in n.inputs}
            if isinstance(catalog.get(name, fallback_to_runtime_pattern=True), MemoryDataset)
        )
        if in_memory:
            raise ConfigError(
                f"the Dask runner cannot pass in-memory datasets between workers: {in_memory}. "
                "Give them a file dataset in the catalog, or run with the default runner."
            )
        client = self._client()
        log.info("Dask scheduler %s, %d workers", client.scheduler.address, len(client.scheduler_info()["workers"]))
        mlflow_run = _mlflow_run()
        futures, deps = {}, pipeline.node_dependencies
        try:
            for node in nodes:  # topological order: a node's dependencies are submitted first
                futures[node] = client.submit(
                    _run_node,
                    node,
                    _node_catalog(catalog, node),
                    PACKAGE_NAME,
                    self._is_async,
                    run_id,
                    mlflow_run,
                    *[futures[d] for d in deps[node]],
                    key=f"{node.name}-{run_id}",
                    pure=False,
                )
            for _, name in as_completed(futures.values(), with_results=True):
                self._logger.info("Completed node: %s", name)
        finally:
            client.close()
