"""Import every module of the production packages in a venv that has requirements.txt alone.

Run by .ci/run: proves production needs nothing from requirements-dev.txt or
requirements-test.txt (the emulator's parser, import-linter, pytest), and that no production
module imports the emulator.
"""

import importlib
import os
import pkgutil
import sys
from pathlib import Path

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memportal.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "ci-production-imports-" + "x" * 40)
os.environ.setdefault("MEMPORTAL_FERNET_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost")  # production settings start only with these
os.environ.setdefault("MEMPORTAL_PUBLIC_URL", "")

import django  # noqa: E402  (after the path and the environment)

django.setup()
imported = []
for package_name in ("memportal", "uploads"):
    package = importlib.import_module(package_name)
    for module in pkgutil.walk_packages(package.__path__, package_name + "."):
        importlib.import_module(module.name)
        imported.append(module.name)
leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("memories_emulator", "python_multipart"))
if leaked:
    sys.exit(f"production imported development modules: {', '.join(leaked)}")
print(f"production install: imported {len(imported)} modules of memportal and uploads, "
      "none of the emulator's")
