"""The one exception type the CLI turns into a readable message instead of a traceback."""


class ProjectError(Exception):
    """A problem the user can fix: bad data, a broken params.yaml, a missing model."""


# The exit code of `register`, `pipeline` and so `make train` when the model failed its quality
# gate: nothing was registered, which CI must not mistake for success (2 is a ProjectError).
GATE_FAILED = 3
