"""Integration fixtures shared across files: one simulated two-node Ray cluster for every test that
asks for ``two_node_cluster`` (test_ray_multinode.py, test_method_plugins_ray.py).

Starting the cluster costs more than most of its tests, so those tests run back to back (collection
order is changed for them alone) and the cluster is shut down right after the last of them, before
any other test can start a Ray instance of its own in this process.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

FIXTURE = "two_node_cluster"


class _Shared:
    stack: ExitStack | None = None
    cluster = None


def _uses_cluster(item) -> bool:
    return FIXTURE in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    users = [item for item in items if _uses_cluster(item)]
    if len(users) < 2:
        return
    first = items.index(users[0])
    others = [item for item in items if not _uses_cluster(item)]
    items[:] = others[:first] + users + others[first:]


@pytest.fixture
def two_node_cluster():
    """A ``simulated_cluster(nodes=2, cpus_per_node=1)`` joined by this process, started once."""
    if _Shared.cluster is None:
        from suite.orchestration.cluster import simulated_cluster  # Ray only for the tests that need it

        stack = ExitStack()
        _Shared.cluster = stack.enter_context(simulated_cluster(nodes=2, cpus_per_node=1))
        _Shared.stack = stack
    return _Shared.cluster


def _close() -> None:
    if _Shared.stack is not None:
        stack, _Shared.stack, _Shared.cluster = _Shared.stack, None, None
        stack.close()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    if _Shared.cluster is not None and (nextitem is None or not _uses_cluster(nextitem)):
        _close()


def pytest_sessionfinish(session, exitstatus):
    _close()  # after an interrupted run too
