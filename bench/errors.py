"""Errors that are the user's to fix: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (a suite file, a flag, a model file). The message names the thing and what was expected."""
