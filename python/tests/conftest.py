"""Shared fixtures: the repository's shipped models and the `scoreinv` binary the Python
results are compared with (``SCOREINV_BIN``; the Makefile passes the one ``make test`` built)."""

import os
import pathlib
import shutil

import pytest
import torch

import scoreinv

# The heap set-up of the command line (faster CPU sampling; results are the same bits).
scoreinv.tune_host_allocator()

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "data" / "models"


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def ct_model():
    return MODELS / "ct-ellipses"


@pytest.fixture(scope="session")
def scoreinv_bin():
    """The command-line binary; tests comparing with it are skipped, with the reason, when
    neither ``SCOREINV_BIN`` nor ``target/debug/scoreinv`` nor ``scoreinv`` on PATH exists."""
    env = os.environ.get("SCOREINV_BIN")
    if env:
        if not os.access(env, os.X_OK):
            pytest.fail(f"SCOREINV_BIN={env} is not an executable")
        return env
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for p in (target / "debug" / "scoreinv", target / "release" / "scoreinv"):
        if p.is_file():
            return str(p)
    found = shutil.which("scoreinv")
    if found:
        return found
    pytest.skip("no scoreinv binary (set SCOREINV_BIN or cargo build --bin scoreinv)")


@pytest.fixture(autouse=True)
def _single_thread_determinism():
    """Tests seed torch's global generator through the library; keep them independent."""
    state = torch.random.get_rng_state()
    yield
    torch.random.set_rng_state(state)
