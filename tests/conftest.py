"""Shared test fixtures: no test reaches the network; dataset caches can be reset around a test."""

import socket

import pytest

from ics_cli.net import data


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
