"""The systemd unit of the agent: one template, rendered by `mydiag agent install-service`.

packaging/mydiag-agent.service is this template rendered with the defaults (a test keeps
the two the same). The unit bounds what the agent may take from the host: a low CPU and
I/O priority, a CPU quota and a memory ceiling, and few writable paths.
"""

from __future__ import annotations

import shlex
import shutil

from agent import selfexec

UNIT_NAME = "mydiag-agent.service"
DEFAULT_CONFIG = "/etc/mydiag/agent.toml"
DEFAULT_EXEC = "/usr/local/bin/mydiag"
DEFAULT_UNIT_DIR = "/etc/systemd/system"

TEMPLATE = """\
# mydiag agent: scheduled MySQL snapshots and triggered captures, uploaded to a ticket.
# Written by `mydiag agent install-service`; see docs/agent.md.
[Unit]
Description=mydiag agent (MySQL diagnostics snapshots and triggers)
After=network-online.target mariadb.service mysql.service mysqld.service
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start} agent run --config {config}
Restart=on-failure
RestartSec=10
# A bad configuration (exit 2) is not fixed by restarting.
RestartPreventExitStatus=2
TimeoutStopSec=30
# Low overhead: the agent also lowers its own priorities ([agent] nice, ionice).
Nice=10
IOSchedulingClass=idle
CPUQuota=25%
MemoryMax=256M
TasksMax=64
Environment=MALLOC_ARENA_MAX=2 PYTHONUNBUFFERED=1
# The spool and host key live in /var/lib/mydiag (MYDIAG_HOME; [spool] dir may point elsewhere).
StateDirectory=mydiag
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def default_exec() -> str:
    """How this installation of mydiag is started: the single file or tree this process runs
    from, else its script, else this Python with -m."""
    if selfexec.ENTRY is not None:
        return selfexec.cli_command()
    found = shutil.which("mydiag")
    if found:
        return found
    return selfexec.cli_command()


def render(config: str = DEFAULT_CONFIG, exec_start: str = DEFAULT_EXEC) -> str:
    return TEMPLATE.format(exec_start=exec_start, config=shlex.quote(config))
