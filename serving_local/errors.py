"""The stack's one error: a part could not be started or does not answer; the message is one line to act
on."""

from process_supervisor import SupervisorError


class StackError(SupervisorError):
    """A part of the stack could not be started or does not answer; the message is one line to act on."""
