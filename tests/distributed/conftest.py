"""One local Ray cluster for all the Ray tests: starting one takes seconds of the suite's budget."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    from embedspace.distributed.session import ray_session

    session = ray_session(num_cpus=2)
    yield session
    session.shutdown()
