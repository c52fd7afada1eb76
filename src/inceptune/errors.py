"""Errors a user can cause, as opposed to bugs.

A `UserError` carries one sentence for the user; the CLI prints it and exits
with status 2. Anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input, told in one sentence (CLI exit code 2)."""

    exit_code = 2


class WorkerLost(UserError):
    """A worker of a multi-worker cluster stopped answering, so this one stops too (exit 3).

    TensorFlow's collective runtime cannot go on after losing a peer, and tearing its threads down with
    the interpreter prints tracebacks of theirs: the CLI leaves at once (`os._exit`) after the sentence.
    Everything worth keeping was already written atomically (cache entries, checkpoints)."""

    exit_code = 3


class ImageError(Exception):
    """An image file that cannot be used; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
