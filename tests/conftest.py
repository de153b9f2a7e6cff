"""Shared test helpers.

Real data sets live in ``../shared/data`` beside the checkout (CI lays it there).
Tests that need them use the ``shared_data`` fixture, which skips with a clear
reason only when that folder is absent.
"""
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (CI lays ../shared beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT
