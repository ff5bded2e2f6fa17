"""Fixtures shared by the whole suite."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _main_checkout(repo: Path) -> Path:
    """The main checkout of a git worktree (its `.git` is a file pointing into the main `.git`); else ``repo``."""
    git = repo / ".git"
    if not git.is_file():
        return repo
    text = git.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        return repo
    gitdir = (repo / text.split(":", 1)[1].strip()).resolve()
    common = gitdir / "commondir"
    common_dir = (gitdir / common.read_text(encoding="utf-8").strip()).resolve() if common.is_file() else gitdir
    return common_dir.parent


def _shared_dir() -> Path:
    # CI and developers have the project's shared material beside the checkout (beside the main
    # checkout, for a git worktree) or name it in CKD_SHARED_DIR; a user's clone has none.
    if os.environ.get("CKD_SHARED_DIR"):
        return Path(os.environ["CKD_SHARED_DIR"])
    for base in (REPO, _main_checkout(REPO)):
        if (base.parent / "shared").exists():
            return base.parent / "shared"
    return REPO.parent / "shared"


SHARED = _shared_dir()



def pytest_configure(config: pytest.Config) -> None:
    # The ROS tests' in-process probes must use the same Fast DDS transports as the node processes the
    # harness starts (and as `make test` exports): with mixed profiles a 60 Hz image flood sees
    # second-long delivery stalls. A profile the user set is kept.
    from ckd_ros.ros.harness import fastdds_major, set_large_images_transport
    set_large_images_transport(os.environ, fastdds_major())
    # ... and the same discovery range as the harness gives them: on Jazzy (Fast DDS 2.14) a participant
    # with the default range never discovers a LOCALHOST one (Kilted's does).
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: reference material lives in ../shared beside the checkout "
                    "(developers and CI have it; it may not be redistributed with the package)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference/ckd: checkpoint, inputs and outputs of the reference CKD implementation."""
    return _require(SHARED / "reference" / "ckd")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """../shared/data: a real RGB-thermal video and published raw results (read only, never committed)."""
    return _require(SHARED / "data")
