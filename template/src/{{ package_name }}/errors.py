"""The one exception type the CLI turns into a readable message instead of a traceback."""


class ProjectError(Exception):
    """A problem the user can fix: bad data, a broken params.yaml, a missing model."""
