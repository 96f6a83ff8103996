"""What a job run carries when it continues as new: every state a later step or the run's end
reads survives the compact form (workflows/continuation.py)."""

from opsconductor.contracts.runs import SkipReason, StepOutcome, StepStatus
from opsconductor.workflows.continuation import (
    pack_states,
    pack_targets,
    unpack_states,
    unpack_targets,
)

NAMES = [f"t{n}" for n in range(1, 8)]


def outcome(target: str, step_id: str, status: StepStatus, **fields: object) -> StepOutcome:
    return StepOutcome(step_id=step_id, target=target, status=status, **fields)


def test_states_survive_the_round_trip_without_output():
    per_target = {
        "t1": {
            "probe": outcome("t1", "probe", StepStatus.succeeded, exit_code=0, stdout="x" * 100),
            "patch": outcome("t1", "patch", StepStatus.failed, exit_code=255, reason="boom"),
        },
        "t2": {"probe": outcome("t2", "probe", StepStatus.failed, exit_code=-1, tolerated=True)},
        "t3": {
            "probe": outcome("t3", "probe", StepStatus.skipped, reason=SkipReason.condition),
            "patch": outcome("t3", "patch", StepStatus.skipped, reason=SkipReason.upstream_failed),
        },
        "t5": {"probe": outcome("t5", "probe", StepStatus.skipped, reason=SkipReason.run_aborted)},
        "t6": {
            "probe": outcome("t6", "probe", StepStatus.cancelled, reason="the run was cancelled")
        },
        "t7": {"patch": outcome("t7", "patch", StepStatus.succeeded)},
    }

    packed = pack_states(NAMES, per_target)
    restored = unpack_states(NAMES, packed)

    assert packed == {"probe": "s0,t-1,c,,a,x,", "patch": "f255,,u,*3,s"}
    assert list(restored) == ["t1", "t2", "t3", "t5", "t6", "t7"]
    for target, steps in per_target.items():
        for step_id, original in steps.items():
            carried = restored[target][step_id]
            assert carried.context() == original.without_output().context()
            assert (carried.failed, carried.blocks_dependants, carried.tolerated) == (
                original.failed,
                original.blocks_dependants,
                original.tolerated,
            )


def test_a_set_of_targets_travels_as_a_bit_each():
    assert unpack_targets(NAMES, pack_targets(NAMES, {"t1", "t4", "t7"})) == {"t1", "t4", "t7"}
    assert unpack_targets(NAMES, pack_targets(NAMES, set())) == set()
    assert pack_targets(NAMES, {"t1", "t4"}) == "9"


def test_a_fleet_that_did_the_same_carries_a_few_bytes_a_step():
    names = [f"host-{n:05d}" for n in range(10_000)]
    per_target = {
        name: {"probe": outcome(name, "probe", StepStatus.succeeded, exit_code=0)} for name in names
    }
    per_target["host-00042"]["probe"] = outcome(
        "host-00042", "probe", StepStatus.failed, exit_code=1
    )
    del per_target["host-09999"]

    packed = pack_states(names, per_target)

    assert packed == {"probe": "s0*42,f1,s0*9956,"}
    restored = unpack_states(names, packed)
    assert [name for name, steps in restored.items() if steps["probe"].failed] == ["host-00042"]
    assert len(restored) == 9_999
