"""The exit statuses of the client commands, the one place that maps the client's errors to them.

===  ===========  ==========================================================================
0    OK           done; censored images still count, and are reported as censored
1    REFUSED      the server refused the call: ``Error: <message> (<rc>)`` on stderr
2    USAGE        bad usage or input, found before anything was sent (typer's own code)
3    UNREACHABLE  the server cannot be reached, or what answers is not an AI Horde API
4    FAULTED      the request faulted, was cancelled on the server, or timed out (then it
                 is cancelled); images delivered before that are still written
130  INTERRUPTED  Ctrl-C; a request being waited for is cancelled on the server first
===  ===========  ==========================================================================
"""

from __future__ import annotations

from enum import IntEnum

from openhorde.client.sdk import ClientError, RequestFaulted, ServerUnreachable


class ExitCode(IntEnum):
    """What the client's exit status means (see the module docstring for the table)."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    UNREACHABLE = 3
    FAULTED = 4
    INTERRUPTED = 130


def exit_code_for(error: ClientError) -> ExitCode:
    """The exit status for a client error."""
    if isinstance(error, ServerUnreachable):
        return ExitCode.UNREACHABLE
    if isinstance(error, RequestFaulted):
        return ExitCode.FAULTED
    return ExitCode.REFUSED
