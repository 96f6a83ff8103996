"""The compiler: a validated document becomes a deterministic plan the workflow interprets.

A plan is a sequence of segments. A per-target segment holds steps that every target runs on
its own; a run-once segment holds steps the run performs once, after the segments before it
have finished on every target. A run-once step is a barrier: per-target steps that need it
start only after it, and it starts only after the per-target steps it needs ended everywhere.
"""

from enum import StrEnum

from pydantic import BaseModel

from opsconductor.jobspec.document import JobDocument, Step
from opsconductor.jobspec.graph import topological_order


class SegmentKind(StrEnum):
    per_target = "per_target"
    run_once = "run_once"


class Segment(BaseModel):
    kind: SegmentKind
    # In dependency order; steps without a path between them may run side by side.
    step_ids: list[str]


class Plan(BaseModel):
    document: JobDocument
    segments: list[Segment]

    @property
    def has_per_target_steps(self) -> bool:
        return any(segment.kind is SegmentKind.per_target for segment in self.segments)


def _phase(step: Step, phases: dict[str, int], run_once: dict[str, bool]) -> int:
    # Per-target steps live in even phases, run-once steps in odd ones; crossing between the
    # two kinds moves to the next phase of the right parity.
    if step.run_once:
        return max([1] + [phases[need] + (2 if run_once[need] else 1) for need in step.needs])
    return max([0] + [phases[need] + (1 if run_once[need] else 0) for need in step.needs])


def compile_plan(document: JobDocument) -> Plan:
    graph = {step.id: step.needs for step in document.steps}
    order = topological_order(graph, [step.id for step in document.steps])
    run_once = {step.id: step.run_once for step in document.steps}
    phases: dict[str, int] = {}
    for step_id in order:
        phases[step_id] = _phase(document.step(step_id), phases, run_once)
    segments = [
        Segment(
            kind=SegmentKind.run_once if phase % 2 else SegmentKind.per_target,
            step_ids=[step_id for step_id in order if phases[step_id] == phase],
        )
        for phase in sorted(set(phases.values()))
    ]
    return Plan(document=document, segments=segments)
