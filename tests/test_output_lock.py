"""One writer per output directory: a live holder refuses a second writer with one Invalid line; a stale lock
(its process is gone, e.g. after kill -9) is taken over; the lock is removed when the writer finishes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from falab._checks import FalabInputError
from falab._lock import LOCK_NAME, output_lock


def test_live_holder_refuses_a_second_writer(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / LOCK_NAME).write_text(str(holder.pid))
        with pytest.raises(FalabInputError, match=rf"Invalid out: .*process {holder.pid} holds"):
            with output_lock(tmp_path):
                pass
        assert (tmp_path / LOCK_NAME).read_text() == str(holder.pid)  # the first writer's lock is untouched
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_is_taken_over_and_removed_on_exit(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(gone.stdout.strip())
    with output_lock(tmp_path) as lock:
        assert lock.read_text() != gone.stdout.strip()
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_is_released_when_the_writer_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with output_lock(tmp_path):
            raise RuntimeError("experiment crashed")
    assert not (tmp_path / LOCK_NAME).exists()


def test_second_reproduce_into_a_directory_being_written_is_refused(tmp_path, monkeypatch, capsys):
    from falab.cli import main

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / LOCK_NAME).write_text(str(holder.pid))
        monkeypatch.setattr(sys, "argv", ["falab", "reproduce", "P004", "--quick", "--out", str(tmp_path)])
        with pytest.raises(SystemExit) as exc:
            main()
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"process {holder.pid} holds" in err[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # nothing of the other writer touched
    finally:
        holder.kill()
        holder.wait()
