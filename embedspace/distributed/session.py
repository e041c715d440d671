"""Scale-out on Ray: join a cluster (or start a local one) and bring embedspace errors back out of its tasks.

Why Ray: past one machine a collection needs an engine that schedules work across
nodes, moves data between them and survives a lost worker. Ray Data does that; this
package plugs embedspace's reader, encoder, index shards and map placement into it
(:mod:`embedspace.distributed.embed`, :mod:`embedspace.distributed.index`) and writes
the same formats the local paths write.

Without an address a local Ray cluster is started on this machine; with one
(``--ray-address ray://host:10001`` or ``host:6379``) the job joins that cluster, whose
nodes must have embedspace and the model installed.
"""

from __future__ import annotations

import contextlib
import logging
import os

from embedspace.errors import EmbedspaceError, InputError, require

__all__ = ["quiet_ray_data", "ray_session", "unwrap_ray_error"]

log = logging.getLogger("embedspace")

_ENV_PASSED_TO_WORKERS = ("EMBEDSPACE_CACHE_DIR", "EMBEDSPACE_CORPORA_DIR", "EMBEDSPACE_BACKEND", "HF_HUB_OFFLINE")


def ray_session(address: str | None = None, *, num_cpus: int | None = None):
    """Connect to a Ray cluster, or start a local one; return the ``ray`` module.

    Parameters
    ----------
    address : str, optional
        Cluster address; ``None`` starts (or reuses) a local cluster on this machine.
    num_cpus : int, optional
        CPUs of the local cluster (default: all of this machine's).
    """
    ray = require("ray", feature="engine='ray'", package="ray[data]")
    if ray.is_initialized():
        return ray
    env = {name: os.environ[name] for name in _ENV_PASSED_TO_WORKERS if name in os.environ}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    kwargs = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,  # task failures come back as exceptions; worker chatter stays in Ray's logs
        "runtime_env": {"env_vars": env},
    }
    # never phone home: the driver reads this variable while it starts; it is put back after
    before = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
    except ConnectionError as exc:
        raise InputError(f"cannot reach the Ray cluster at '{address}': {exc}") from None
    finally:
        if before is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = before
    return ray


@contextlib.contextmanager
def quiet_ray_data(progress: bool | None):
    """Run a Ray Data job in input order, its progress bars as asked and its loggers quiet; restore all after.

    Ray Data logs each task failure with its traceback before raising it (and its progress
    at INFO); embedspace reports a failure itself, in one line.
    """
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    loggers = {name: logging.getLogger(name) for name in ("ray", "ray.data")}
    levels = {name: logger.level for name, logger in loggers.items()}
    context.execution_options.preserve_order = True
    context.enable_progress_bars = bool(progress)
    for logger in loggers.values():
        logger.setLevel(logging.CRITICAL)
    try:
        yield context
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def unwrap_ray_error(exc: BaseException) -> BaseException:
    """The embedspace error inside a Ray task failure, if there is one."""

    seen = exc
    for _ in range(8):
        cause = getattr(seen, "cause", None) or seen.__cause__
        if cause is None:
            break
        if isinstance(cause, EmbedspaceError):
            return cause
        seen = cause
    return exc


