"""Shared test setup: no network, few threads, and small fixtures."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Offline by design: any attempt to open a non-local connection fails the test."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            return real_connect(self, address)
        raise NetworkBlocked(f"test tried to open a network connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection",
                        lambda address, *a, **k: (_ for _ in ()).throw(NetworkBlocked(f"network: {address!r}")))
    yield


@pytest.fixture(autouse=True, scope="session")
def few_threads():
    import torch

    torch.set_num_threads(1)
    yield


# --- a trained smoke study on data whose label is markup (shared by the predict, export and browser tests) ---


@pytest.fixture(scope="session")
def markup_smoke_run(tmp_path_factory):
    """The smoke study (every arm, note included) trained once per session on the markup-label dataset."""
    from markup_data import smoke_cli, write_markup_label_dataset

    root = tmp_path_factory.mktemp("markup-smoke")
    data = write_markup_label_dataset(root / "complaints.csv")
    run_dir = root / "run"
    done = smoke_cli(["run", "--config", "smoke", "--set", f"data.source={data}", "--output-dir", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir
