"""The one exception type the command line turns into a clean one-line message."""


class UserError(Exception):
    """Something the user can fix: bad config, bad flag value, missing permission."""
