"""Error types shared by every part of the pack (no ComfyUI imports)."""


class InputError(ValueError):
    """Bad input found before any work or money was spent.

    The message is written for the person who set the widgets: it names the input and says
    what would be accepted.
    """
