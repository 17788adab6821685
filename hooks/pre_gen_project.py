"""Refuse the answers copier would refuse, with copier.yml's messages, before anything is written.

Cookiecutter renders this file with Jinja first: `template_root()` is copier_bridge's.
"""

import json
import sys

sys.path.insert(0, r"{{ template_root() }}")
from hooks.copier_bridge import copier_answers

try:
    copier_answers(json.loads(r"""{{ cookiecutter | tojson }}"""))
except ValueError as error:
    sys.exit(str(error))
