"""What every sandbox test module needs: a running sandbox that must record no bug of its own,
and an HTTP session that never goes through a configured proxy."""

import pytest
import requests
from pack import module

Sandbox = module("nodes.sandbox").Sandbox


def serve(**settings):
    """Yield a running Sandbox(**settings) for one test (use in a fixture); afterwards none of the
    sandbox's handlers may have raised (Sandbox.errors)."""
    with Sandbox(**settings) as sandbox:
        yield sandbox
        assert sandbox.errors == [], "sandbox bugs:\n" + "\n".join(sandbox.errors)


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False  # never send loopback traffic through a configured proxy
        yield session
