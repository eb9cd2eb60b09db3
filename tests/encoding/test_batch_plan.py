"""Users are cut into forwards by the cost of their padding."""

from __future__ import annotations

from streamrec.encoding.batch_plan import CostModel, plan_batches


def test_plan_batches_groups_similar_shapes_and_keeps_order_without_bucketing() -> None:
    jobs = [(600, 0), (12, 700), (13, 690), (610, 0), (12, 20)]
    cost = CostModel.for_device("cpu")
    groups = plan_batches(jobs, max_users=8, max_kv_tokens=1 << 16, cost=cost)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]
    assert not any({0, 3} & set(g) and {1, 2, 4} & set(g) for g in groups)  # resets never pad the small ones
    assert plan_batches(jobs, max_users=2, max_kv_tokens=1 << 16, cost=cost, bucketing=False) == [[0, 1], [2, 3], [4]]
