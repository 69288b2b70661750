"""A running sandbox that must record no bug of its own (the `http` session fixture is in conftest)."""

from pack import module

Sandbox = module("nodes.sandbox").Sandbox


def serve(**settings):
    """Yield a running Sandbox(**settings) for one test (use in a fixture); afterwards none of the
    sandbox's handlers may have raised (Sandbox.errors)."""
    with Sandbox(**settings) as sandbox:
        yield sandbox
        assert sandbox.errors == [], "sandbox bugs:\n" + "\n".join(sandbox.errors)
