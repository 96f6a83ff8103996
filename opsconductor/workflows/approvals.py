"""Approval gates inside a run: who may decide, and what was decided. Workflow-safe."""

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from opsconductor.contracts.runs import (
    APPROVAL_NOT_PENDING,
    APPROVAL_NOT_PERMITTED,
    ApprovalDecision,
)

# A role approver admits that role and every role above it.
ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}


class PendingApproval(BaseModel):
    step: str
    message: str
    approvers: list[str]


class ApprovalOutcome(BaseModel):
    approved: bool
    by: str | None
    comment: str
    expired: bool = False

    def outputs(self) -> dict[str, object]:
        decision = "approved" if self.approved else ("expired" if self.expired else "rejected")
        return {"decision": decision, "by": self.by, "comment": self.comment}

    def summary(self) -> str:
        if self.expired:
            return "no decision before the approval timed out"
        note = f": {self.comment}" if self.comment else ""
        return f"rejected by {self.by}{note}"


def may_decide(approvers: list[str], username: str, role: str) -> bool:
    rank = ROLE_RANK.get(role, -1)
    for approver in approvers:
        if approver == username:
            return True
        if approver in ROLE_RANK and rank >= ROLE_RANK[approver]:
            return True
    return False


class ApprovalGate:
    def __init__(self) -> None:
        self._pending: dict[str, PendingApproval] = {}
        self._decisions: dict[str, ApprovalOutcome] = {}

    def open(self, step: str, message: str, approvers: list[str]) -> None:
        self._pending[step] = PendingApproval(step=step, message=message, approvers=approvers)

    def pending(self) -> list[dict[str, object]]:
        return [approval.model_dump() for approval in self._pending.values()]

    def check(self, decision: ApprovalDecision) -> None:
        pending = self._pending.get(decision.step)
        if pending is None or decision.step in self._decisions:
            raise ApplicationError(
                f"step {decision.step!r} is not waiting for approval", type=APPROVAL_NOT_PENDING
            )
        if not may_decide(pending.approvers, decision.by, decision.role):
            raise ApplicationError(
                f"{decision.by} may not decide step {decision.step!r} "
                f"(approvers: {', '.join(pending.approvers)})",
                type=APPROVAL_NOT_PERMITTED,
            )

    def decide(self, decision: ApprovalDecision) -> str:
        self.check(decision)
        self._decisions[decision.step] = ApprovalOutcome(
            approved=decision.approve, by=decision.by, comment=decision.comment
        )
        return "approved" if decision.approve else "rejected"

    def decided(self, step: str) -> bool:
        return step in self._decisions

    def expire(self, step: str) -> None:
        self._decisions.setdefault(
            step, ApprovalOutcome(approved=False, by=None, comment="", expired=True)
        )

    def close(self, step: str) -> ApprovalOutcome:
        self._pending.pop(step, None)
        return self._decisions[step]
