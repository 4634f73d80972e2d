"""Fixtures for the dashboard tests: a folder of runs with one tiny finished run, a live server."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "starlette", reason="the dashboard tests need starlette (pip install 'cnnlab[dashboard]')"
)
pytest.importorskip("uvicorn", reason="the dashboard tests need uvicorn (pip install 'cnnlab[dashboard]')")


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    """``RUNS/done``: a finished 1-epoch `small` run on digits (model.npz, metrics.json, ...)."""
    from cnnlab.train.runs.config import TrainConfig
    from cnnlab.train.runs.run import train_run

    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(data="digits", model="small", epochs=1, batch_size=64, out=str(root / "done"))
    train_run(config, verbose=False)
    return root


@pytest.fixture(scope="session")
def server(runs_root):
    """The dashboard on a free port of 127.0.0.1 (uvicorn in a thread), serving ``runs_root``."""
    from cnnlab.dashboard.server import BackgroundServer

    running = BackgroundServer(runs_root, port=0).start()
    yield running
    running.stop()
