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
    # Four eyes: who asked for the run may not approve it, unless the step allows it.
    allow_self_approval: bool = False


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
    """Whether a decider passes the approver list. A role's name is only ever a role, matched
    against the decider's current role (read from their user row when they signed in, lowered to
    a token's role): a user named `admin` who was demoted does not pass an `["admin"]` gate. Any
    other entry is a username; the decider is signed in, so that user is still active."""
    rank = ROLE_RANK.get(role, -1)
    for approver in approvers:
        if approver in ROLE_RANK:
            if rank >= ROLE_RANK[approver]:
                return True
        elif approver == username:
            return True
    return False


class ApprovalGate:
    def __init__(self) -> None:
        self._pending: dict[str, PendingApproval] = {}
        self._decisions: dict[str, ApprovalOutcome] = {}
        self._requester: str | None = None

    def open(
        self,
        step: str,
        message: str,
        approvers: list[str],
        *,
        requester: str,
        allow_self_approval: bool = False,
    ) -> None:
        self._requester = requester
        self._pending[step] = PendingApproval(
            step=step,
            message=message,
            approvers=approvers,
            allow_self_approval=allow_self_approval,
        )

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
        # Rejecting one's own run is allowed: it only stops what the requester could cancel.
        if decision.approve and decision.by == self._requester and not pending.allow_self_approval:
            raise ApplicationError(
                f"{decision.by} requested this run and may not approve it: another approver "
                f"must (four eyes; the step may set allow_self_approval: true)",
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
