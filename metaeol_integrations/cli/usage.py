"""The CLI's own error for bad command-line input: printed as one line, exit status 2 (as argparse does)."""


class UsageError(Exception):
    """Bad command-line input; the message names the fix."""
