"""The pooling malloc switch (allocator.py): model commands rerun themselves under jemalloc."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jukesep import allocator

PROBE = "from jukesep import allocator; allocator.switch(); print(allocator.active())"


def test_preload_env_puts_the_library_first_and_marks_the_switch(monkeypatch):
    monkeypatch.setattr(allocator, "find", lambda: "/lib/libjemalloc.so.2")
    monkeypatch.setattr(sys, "platform", "linux")
    env = allocator.preload_env({"LD_PRELOAD": "/opt/mine.so", "HOME": "/root"})
    assert env["LD_PRELOAD"] == "/lib/libjemalloc.so.2:/opt/mine.so"
    assert env[allocator.MARK] == "/lib/libjemalloc.so.2" and env["HOME"] == "/root"
    assert allocator.preload_env(env) is None  # switched once, never again
    assert allocator.preload_env({allocator.MARK: "system"}) is None


def test_preload_env_stays_without_a_library_or_off_linux(monkeypatch):
    monkeypatch.setattr(allocator, "find", lambda: None)
    assert allocator.preload_env({}) is None
    monkeypatch.setattr(allocator, "find", lambda: "/lib/libjemalloc.so.2")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.preload_env({}) is None


@pytest.mark.skipif(allocator.find() is None, reason="no jemalloc or tcmalloc installed")
def test_switch_reruns_the_process_under_the_library():
    env = {k: v for k, v in os.environ.items() if k != allocator.MARK}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() in ("jemalloc", "tcmalloc_minimal")
    env[allocator.MARK] = "system"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "system"
