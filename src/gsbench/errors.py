"""User-facing errors: the CLI prints their message as one line (no traceback) and exits with status 2."""


class UserError(Exception):
    """A mistake the user can fix (bad config value, missing device, ...); the message says how."""
