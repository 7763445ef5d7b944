"""Local services by PID: started in their own process group, stopped as a whole."""

import os
from pathlib import Path

import psutil
import pytest

from resources.local_services import (
    _group_alive,
    _is_zombie,
    pid_file,
    running_pid,
    start_service,
    stop_service,
)


def test_a_stopped_service_is_not_waited_for_while_it_awaits_reaping(tmp_path: Path) -> None:
    # Started by this process, the service is its child: once stopped it lingers as a zombie
    # until reaped. The stop must count it as gone, not wait out its timeout (the test's
    # timeout is far shorter than the one given here).
    pid = start_service(tmp_path, "sleeper", ["sleep", "3600"], dict(os.environ))
    assert running_pid(tmp_path, "sleeper") == pid and _group_alive(pid)
    assert stop_service(tmp_path, "sleeper", timeout_s=3600)
    assert _is_zombie(pid) and not _group_alive(pid)
    assert running_pid(tmp_path, "sleeper") is None
    os.waitpid(pid, 0)
    assert not stop_service(tmp_path, "sleeper")  # nothing left to stop


@pytest.mark.parametrize("content", ["", "1 12345.0", "0 1.0", "4242", "x 1.0"])
def test_a_pid_file_without_a_safe_pid_and_start_time_is_refused(
    tmp_path: Path, content: str
) -> None:
    pid_file(tmp_path, "svc").write_text(content)
    with pytest.raises(ValueError, match="refusing to signal"):
        running_pid(tmp_path, "svc")
    with pytest.raises(ValueError, match="refusing to signal"):
        stop_service(tmp_path, "svc")
    assert pid_file(tmp_path, "svc").exists()  # kept for the user to look at


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    # This test's own PID, with a start time it never had: the PID file's process is gone.
    started = psutil.Process(os.getpid()).create_time()
    pid_file(tmp_path, "svc").write_text(f"{os.getpid()} {started - 60!r}")
    assert running_pid(tmp_path, "svc") is None
    assert not pid_file(tmp_path, "svc").exists()
    assert not stop_service(tmp_path, "svc")  # and this process is still here to assert it
