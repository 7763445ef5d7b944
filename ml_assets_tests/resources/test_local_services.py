"""Local services by PID: started in their own process group, stopped as a whole."""

import os
from pathlib import Path

from resources.local_services import (
    _group_alive,
    _is_zombie,
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
