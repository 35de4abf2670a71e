"""The one exception type for bad input: its message is a complete paragraph that names the fix.

The CLI prints it without a traceback and exits with status 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (config, data, checkpoint), explained in one paragraph."""
