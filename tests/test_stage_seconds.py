"""Where a run's time went: a node's seconds cover the lazy work its dataset's save carries out."""

from __future__ import annotations

import time

from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from autointerp.hooks import ProjectHooks, stage_seconds


class LazySave(AbstractDataset):
    """Saves by calling what the node returned, as the project's job datasets do."""

    def __init__(self):
        self.saved = None

    def _save(self, job) -> None:
        self.saved = job()

    def _load(self):
        return self.saved

    def _describe(self) -> dict:
        return {}


class SlowLoad(MemoryDataset):
    def load(self):
        time.sleep(0.2)
        return super().load()


def slow_job(x):
    return lambda: time.sleep(0.4) or x  # the work happens in the dataset's save


def quick(x):
    return x


def test_node_seconds_include_loading_and_the_lazy_save():
    hooks = ProjectHooks()
    manager = _create_hook_manager()
    manager.register(hooks)
    catalog = DataCatalog({"raw": SlowLoad(1), "job_out": LazySave(), "done": MemoryDataset()})
    pipe = Pipeline([node(slow_job, "raw", "job_out", name="slow_job"), node(quick, "job_out", "done", name="quick")])
    SequentialRunner().run(pipe, catalog, hook_manager=manager)
    seconds = hooks.node_seconds()
    assert set(seconds) == {"slow_job", "quick"}
    assert seconds["slow_job"] >= 0.6, seconds  # 0.2 s loading + 0.4 s in the save, not the call alone
    assert seconds["quick"] < 0.3, seconds
    assert stage_seconds(seconds)["other"] == sum(seconds.values())  # nodes of no registered stage
