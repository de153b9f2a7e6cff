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


