"""The CLI's exit codes and the errors that end a command with one of them."""

from __future__ import annotations

PROG = "python cli.py"

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_NO_CREDENTIALS, EXIT_INTERRUPTED, EXIT_VENDOR = 0, 1, 2, 3, 4, 5
EXIT_CODES = """exit codes:
  0  everything done
  1  some files failed (the others were written), or a connection test failed
  2  bad usage or input: nothing was sent to any vendor
  3  no credentials for the vendor (try --sandbox to run offline)
  4  interrupted (Ctrl-C): vendor tasks still in flight were cancelled where the vendor allows
  5  the vendor failed on every file: nothing was written"""


class UsageError(Exception):
    """Bad usage or input found before anything was sent (exit 2)."""


class NoCredentials(Exception):
    """The vendor's credentials are not found (exit 3); the message says what was looked for."""


class Interrupted(KeyboardInterrupt):
    """Raised from the runs' poll hook once Ctrl-C was pressed: the run cancels its vendor work."""


def need_torch() -> None:
    """torch is imported only by the commands that process images, so --help and usage errors stay fast."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("torch is not installed in this Python. Run the CLI with ComfyUI's Python, or install "
                         "the torch build for your machine yourself (the CPU build where there is no GPU), then "
                         "pip install -r requirements.txt") from None
