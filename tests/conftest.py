"""Shared test fixtures: no test reaches the network; dataset caches can be reset around a test;
a finished run of a configuration, and a quick study, is made once per session for the tests that only
read it."""

import dataclasses
import socket

import pytest

from ics_cli.config import RunConfig
from ics_cli.net import data

from helpers import run


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test may reach the network: name lookups and connections fail at once."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def fresh_cache():
    """Datasets loaded afresh in this test (files written by the test are read, not a cached copy)."""
    data.clear_cache()
    yield
    data.clear_cache()


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """`reference_run(**kw)`: the folder of a finished run of RunConfig(**kw) (the synthetic dataset
    unless kw names one), trained the first time a test of the session asks for that configuration
    (every field alike, defaults included) and shared from then on. For tests that only read it: a
    test that writes into a run folder trains its own."""
    root = tmp_path_factory.mktemp("reference")
    done = {}

    def get(**kw):
        key = repr(sorted(dataclasses.asdict(RunConfig(**{"dataset": "synthetic", **kw})).items()))
        if key not in done:
            done[key] = run(root / str(len(done)), **kw).path
        return done[key]

    return get


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory):
    """`quick_study(name)`: the StudyResult of study `name` run quick (`ics reproduce NAME --quick`,
    one job), run the first time a test of the session asks for it and shared from then on. For tests
    that only read its folder (`.out`): a test that writes there works on a copy."""
    from ics_cli import studies

    root = tmp_path_factory.mktemp("studies")
    done = {}

    def get(name):
        if name not in done:
            done[name] = studies.run_study(name, root / name, quick=True, jobs=1)
        return done[name]

    return get
