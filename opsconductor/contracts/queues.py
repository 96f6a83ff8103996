"""Task-queue names: the orchestration queue runs workflows, one queue per protocol runs activities.

Each protocol has its own queue so its workers can be sized, placed and restarted on their own
(WinRM workers near Windows hosts, scanners where nmap may run).
"""

from enum import StrEnum


class TaskQueue(StrEnum):
    orchestration = "orchestration"
    ssh = "ssh"
    winrm = "winrm"
    http = "http"
    discovery = "discovery"
    notify = "notify"

    @property
    def runs_workflows(self) -> bool:
        return self is TaskQueue.orchestration


ALL_QUEUES: tuple[TaskQueue, ...] = tuple(TaskQueue)
