"""The one error type the command line turns into a one-line message and exit 2.

Everything else (a bug, a library's surprise) keeps its traceback and exits 1, so that
a bug never looks like a user's mistake.
"""


class ArchsearchError(ValueError):
    """Input a user can fix: the message says what is wrong and what to do, in one line."""
