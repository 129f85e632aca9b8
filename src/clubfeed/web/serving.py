"""What `clubfeed serve` readies in its own process before uvicorn starts the workers."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from clubfeed.settings import Settings
from clubfeed.web import logs, metrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(settings: Settings, workers: int) -> dict[str, Any]:
    """Check the settings, configure logs, give the workers an empty metrics directory.

    Returns uvicorn's options for logging: its own configuration and access log are
    replaced by ours (`web.logs`, `web.observe`). Several workers share metrics through
    files in PROMETHEUS_MULTIPROC_DIR: an operator's directory has its old `*.db` files
    removed (values of processes gone would otherwise still count); without one, a
    temporary directory is made and removed when this process exits. Raises ValueError
    for settings the server cannot start with.
    """
    metrics.check(settings)
    logs.configure(settings)
    directory = settings.metrics_dir
    if directory is None and workers > 1 and settings.metrics != "off":
        directory = tempfile.mkdtemp(prefix="clubfeed-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
        # Worker processes are spawned after this, and read it like every setting.
        os.environ[MULTIPROC_ENV] = directory
    return {"log_config": None, "access_log": False}
