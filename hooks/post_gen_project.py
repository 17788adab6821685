"""Fill the folder cookiecutter made by rendering template/ with copier: one template tree.

Cookiecutter renders this file with Jinja first: `template_root()` is copier_bridge's.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, r"{{ template_root() }}")
from hooks.copier_bridge import render_with_copier

render_with_copier(json.loads(r"""{{ cookiecutter | tojson }}"""), Path.cwd())
