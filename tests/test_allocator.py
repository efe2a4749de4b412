"""The pooling malloc switch (allocator.py): model commands rerun themselves under jemalloc."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jukesep import allocator, cli

# Prints the malloc in use after the switch, and the LD_PRELOAD the process' children get.
PROBE = ("import os; from jukesep import allocator; allocator.switch(); "
         "print(allocator.active(), os.environ.get('LD_PRELOAD', '-'))")


def test_preload_env_puts_the_library_first_and_marks_the_switch(monkeypatch):
    monkeypatch.setattr(allocator, "find", lambda: "/lib/libjemalloc.so.2")
    env = allocator.preload_env({"LD_PRELOAD": "/opt/mine.so", "HOME": "/root"})
    assert env["LD_PRELOAD"] == "/lib/libjemalloc.so.2:/opt/mine.so"
    assert env[allocator.MARK] == "/lib/libjemalloc.so.2" and env["HOME"] == "/root"
    assert env[allocator.SAVED] == "/opt/mine.so"  # given back to the children
    assert env["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1"  # freed pages kept for reuse
    assert allocator.preload_env({"MALLOC_CONF": "narenas:1"})["MALLOC_CONF"] == "narenas:1"  # the user's wins
    assert allocator.preload_env(env) is None  # switched once, never again
    assert allocator.preload_env({allocator.MARK: "system"}) is None
    assert "MALLOC_CONF" not in allocator.preload_env({}, keep_pages=False)  # training: jemalloc's decay


@pytest.mark.parametrize("command, keep_pages", [
    (["separate", "x.wav"], True),
    (["evaluate", "--baseline", "mix4", "--data", "corpus"], True),
    (["train", "shared", "--data", "corpus"], False),
    (["baselines", "train", "openunmix", "--data", "corpus", "--out", "umx.pt"], False),
])
def test_training_commands_let_jemalloc_return_freed_pages(monkeypatch, command, keep_pages):
    """Kept pages grew a training run by about 90 MiB a second; separation needs them kept."""
    class Switched(Exception):
        pass

    def switch(keep_pages=True):
        raise Switched(keep_pages)
    monkeypatch.setattr(allocator, "switch", switch)
    monkeypatch.setattr(cli, "_is_own_process", lambda: True)
    monkeypatch.setattr(sys, "argv", ["jukesep", *command])
    with pytest.raises(Switched) as switched:
        cli.main()
    assert switched.value.args == (keep_pages,)


def test_no_switch_without_a_library_or_off_linux(monkeypatch):
    monkeypatch.setattr(allocator, "find", lambda: None)
    assert allocator.preload_env({}) is None
    monkeypatch.undo()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.find() is None and allocator.preload_env({}) is None


def test_main_called_from_python_never_reruns_the_process(monkeypatch, tmp_path, capsys):
    def refuse():
        raise AssertionError("main(argv) must not switch")
    monkeypatch.setattr(allocator, "switch", refuse)
    assert cli.main(["separate", str(tmp_path / "missing.wav")]) == 1
    assert "missing.wav" in capsys.readouterr().err


@pytest.mark.skipif(allocator.find() is None, reason="no jemalloc or tcmalloc installed")
def test_switch_reruns_the_process_under_the_library_and_children_do_not_inherit_it():
    env = {k: v for k, v in os.environ.items() if k not in (allocator.MARK, allocator.SAVED, "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() in (["jemalloc", "-"], ["tcmalloc_minimal", "-"])
    env[allocator.MARK] = "system"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["system", "-"]


@pytest.mark.skipif(allocator.find() is None, reason="no jemalloc or tcmalloc installed")
def test_a_switched_command_reports_errors_and_exit_codes_as_before(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (allocator.MARK, allocator.SAVED, "LD_PRELOAD")}
    command = [sys.executable, "-m", "jukesep", "separate", str(tmp_path / "missing.wav"), "-o", str(tmp_path)]
    switched = subprocess.run(command, env=env, capture_output=True, text=True)
    plain = subprocess.run(command, env={**env, allocator.MARK: "system"}, capture_output=True, text=True)
    assert switched.returncode == plain.returncode == 1
    assert switched.stderr == plain.stderr and "missing.wav" in switched.stderr and switched.stdout == plain.stdout
