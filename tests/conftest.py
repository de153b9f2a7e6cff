"""Shared test helpers.

Real data sets live in ``../shared/data`` beside the checkout (CI lays it there).
Tests that need them use the ``shared_data`` fixture, which skips with a clear
reason only when that folder is absent.
"""
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
# the shared test helpers (numpy_reference, spm_test_utils, ...) live beside this file; the
# tests themselves are in folders that mirror xlnet_tf/
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (CI lays ../shared beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


_ACTIVE_SCRIPT = {}


def script_module(name):
    """Import run_<x>.py for an in-process run with ITS absl flags installed.

    The scripts define some flags with the same names (and different defaults); absl keeps
    one global registry, so before a script's flags are (re)defined the other script's
    definitions of those names are removed.  Cheap when the script is already active."""
    import importlib
    import re
    import sys

    from absl import flags

    if _ACTIVE_SCRIPT.get("name") == name:
        return _ACTIVE_SCRIPT["module"]
    names = set()
    for src in (f"{name}.py", "common_flags.py"):
        names |= set(re.findall(r'DEFINE_\w+\(\s*"(\w+)"', (REPO_ROOT / src).read_text()))
    for flag in names:
        if flag in flags.FLAGS:
            delattr(flags.FLAGS, flag)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    module = (importlib.reload(sys.modules[name]) if name in sys.modules
              else importlib.import_module(name))
    _ACTIVE_SCRIPT.update(name=name, module=module)
    return module
