from pathlib import Path

import pytest
import torch

from streamrec.config import HeadSettings
from streamrec.errors import CheckpointError
from streamrec.head import Example, OnlineHead

ENC = 16
CONTEXT = HeadSettings().context_items


def examples(n: int, items: torch.Tensor, seed: int = 0) -> Example:
    g = torch.Generator().manual_seed(seed)
    return Example(torch.randn(n, ENC, generator=g), torch.full((n, CONTEXT), -1), items, torch.ones(n))


def test_learns_a_planted_transition_from_recent_items() -> None:
    head = OnlineHead(ENC, HeadSettings(dim=16, negatives=32, replay_size=512, replay_sample=64, seed=1))
    item_text = torch.randn(40, ENC)
    for step in range(150):
        last = torch.randint(0, 40, (32,), generator=torch.Generator().manual_seed(step))
        recent = torch.full((32, CONTEXT), -1)
        recent[:, 0] = last
        head.learn(Example(torch.zeros(32, ENC), recent, (last + 1) % 40, torch.ones(32)), item_text)
    item_vecs, bias = head.item_vectors(item_text)
    recent = torch.full((40, CONTEXT), -1)
    recent[:, 0] = torch.arange(40)
    scores = head.user_vectors(torch.zeros(40, ENC), recent, item_text) @ item_vecs.T + bias
    accuracy = (scores.argmax(dim=1) == (torch.arange(40) + 1) % 40).float().mean()
    assert accuracy > 0.9
    assert head.version == 150


def test_negatives_at_least_the_catalogue_give_the_full_softmax() -> None:
    head = OnlineHead(ENC, HeadSettings(dim=8, negatives=50, replay_size=0, steps_per_batch=1))
    item_text = torch.randn(50, ENC)
    batch = examples(6, torch.tensor([3, 3, 7, 11, 20, 49]))
    with torch.no_grad():
        vectors, bias = head.model.items(item_text, torch.arange(50))
        logits = head.model.users(batch.vectors, batch.recent, item_text) @ vectors.T + bias
        expected = torch.nn.functional.cross_entropy(logits, batch.items)
    assert head.learn(batch, item_text) == pytest.approx(expected.item(), rel=1e-5)


def test_new_items_score_from_text_before_any_interaction() -> None:
    head = OnlineHead(ENC, HeadSettings(dim=8))
    item_text = torch.randn(3, ENC)
    head.ensure_capacity(2000)
    vecs, bias = head.item_vectors(item_text)
    assert torch.all(vecs.norm(dim=1) > 0) and torch.all(bias == 0)  # id parts are zero, text is not


def test_capacity_grows_and_keeps_learned_rows_and_adam_state() -> None:
    head = OnlineHead(ENC, HeadSettings(dim=8, negatives=4), capacity=4)
    item_text = torch.randn(4, ENC)
    head.learn(examples(8, torch.tensor([0, 1, 2, 3] * 2)), item_text)
    learned = head.model.item_ids.weight.detach().clone()
    head.learn(examples(8, torch.tensor([9] * 8), seed=1), torch.randn(10, ENC))
    assert head.capacity >= 10
    torch.testing.assert_close(head.model.item_ids.weight[:4], learned, rtol=0.2, atol=0.05)
    state = head.optimizer.state[head.model.item_ids.weight]
    assert state["exp_avg"].shape == head.model.item_ids.weight.shape


def test_checkpoint_round_trip_is_exact_and_remaps_item_rows(tmp_path: Path) -> None:
    settings = HeadSettings(dim=8, negatives=4, replay_size=16, replay_sample=4)
    head = OnlineHead(ENC, settings)
    item_text = torch.randn(3, ENC)
    for step in range(3):
        head.learn(examples(6, torch.tensor([0, 1, 2, 0, 1, 2]), seed=step), item_text)
    path = tmp_path / "head.safetensors"
    head.save(path, ["a", "b", "c"])
    assert not (tmp_path / "head.safetensors.tmp").exists()
    assert path.read_bytes()[8:9] == b"{"  # safetensors header, never a pickle

    loaded = OnlineHead(ENC, settings)
    new_index = {"c": 0, "a": 1, "b": 2}
    assert loaded.load(path, new_index.__getitem__) == ["a", "b", "c"]
    assert loaded.version == 3
    order = torch.tensor([2, 0, 1])  # new row r holds old item order[r]
    torch.testing.assert_close(loaded.model.item_ids.weight[:3], head.model.item_ids.weight[order])
    recent = torch.tensor([[0, -1, -1, -1, -1]])
    torch.testing.assert_close(
        loaded.user_vectors(torch.ones(1, ENC), torch.tensor([[1, -1, -1, -1, -1]]), item_text[order]),
        head.user_vectors(torch.ones(1, ENC), recent, item_text))
    assert loaded.replay.count == head.replay.count


def test_incompatible_or_corrupt_checkpoint(tmp_path: Path) -> None:
    head = OnlineHead(ENC, HeadSettings(dim=8))
    head.save(tmp_path / "h.safetensors", [])
    with pytest.raises(CheckpointError, match="head dim"):
        OnlineHead(ENC, HeadSettings(dim=16)).load(tmp_path / "h.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        head.load(tmp_path / "bad.safetensors")


def test_sparse_ids_move_only_the_rows_a_batch_touched_and_survive_growth_and_checkpoints(tmp_path: Path) -> None:
    settings = HeadSettings(dim=8, negatives=16, replay_size=0, steps_per_batch=1, seed=2)
    head = OnlineHead(ENC, settings, capacity=100, sparse_ids=True)
    item_text = torch.randn(100, ENC)
    before = head.model.item_ids.weight.detach().clone()
    head.learn(examples(4, torch.tensor([5, 6, 7, 8])), item_text)
    grad = head.model.item_ids.weight.grad
    assert grad is None or grad.is_sparse  # sparse gradients: the step costs the batch, not the table
    moved = (head.model.item_ids.weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert {5, 6, 7, 8} <= set(moved) and len(moved) <= 4 + 16  # the targets and the sampled negatives only
    state = head.optimizer.state[head.model.item_ids.weight]
    assert isinstance(state["step"], int) and state["exp_avg"].shape == (100, 8)
    losses = [head.learn(examples(4, torch.tensor([5, 6, 7, 8])), item_text) for _ in range(30)]
    assert losses[-1] < losses[0]  # it learns
    head.ensure_capacity(300)  # grown: the learned rows and their lazy-Adam moments carried over
    assert head.optimizer.state[head.model.item_ids.weight]["exp_avg"].shape == (300, 8)
    head.save(tmp_path / "head.safetensors", [str(i) for i in range(100)])
    loaded = OnlineHead(ENC, settings, capacity=100, sparse_ids=True)
    loaded.load(tmp_path / "head.safetensors", int)
    torch.testing.assert_close(loaded.model.item_ids.weight[:100], head.model.item_ids.weight[:100])
    assert loaded.learn(examples(4, torch.tensor([5, 6, 7, 8])), item_text) < losses[0]


def _pairs_to_sum(sequence: str, n: int = 8, updates: int = 100) -> float:
    """Accuracy on a planted task only reading two recent items together solves: after items a
    and b, the next is (a + b) mod n. A weighted sum scores each item apart, so it cannot."""
    head = OnlineHead(ENC, HeadSettings(dim=32, negatives=64, replay_size=512, seed=1, sequence=sequence))
    item_text = torch.randn(n, ENC, generator=torch.Generator().manual_seed(0))

    def recent_of(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        recent = torch.full((len(a), CONTEXT), -1)
        recent[:, 0], recent[:, 1] = a, b
        return recent

    for step in range(updates):
        a, b = torch.randint(0, n, (2, 32), generator=torch.Generator().manual_seed(step))
        head.learn(Example(torch.zeros(32, ENC), recent_of(a, b), (a + b) % n, torch.ones(32)), item_text)
    a, b = torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)
    vectors, bias = head.item_vectors(item_text)
    scores = head.user_vectors(torch.zeros(n * n, ENC), recent_of(a, b), item_text) @ vectors.T + bias
    return (scores.argmax(dim=1) == (a + b) % n).float().mean().item()


@pytest.mark.slow
def test_attention_reads_recent_items_together_where_a_weighted_sum_cannot() -> None:
    assert _pairs_to_sum("attention") > 0.9
    assert _pairs_to_sum("weighted") < 0.4  # chance is 1/8


def test_attention_checkpoints_round_trip_and_refuse_the_other_kind(tmp_path: Path) -> None:
    settings = HeadSettings(dim=8, negatives=4, sequence="attention")
    head = OnlineHead(ENC, settings)
    item_text = torch.randn(3, ENC)
    recent = torch.full((6, CONTEXT), -1)
    recent[:3, 0], recent[3:, :2] = torch.tensor([0, 1, 2]), torch.tensor([[2, 1], [1, 0], [0, 2]])
    for _ in range(3):
        head.learn(Example(torch.randn(6, ENC), recent, torch.tensor([1, 2, 0, 0, 2, 1]), torch.ones(6)), item_text)
    nobody = torch.full((1, CONTEXT), -1)  # a user with no recent items: a vector, not NaN
    assert torch.isfinite(head.user_vectors(torch.ones(1, ENC), nobody, item_text)).all()
    head.save(tmp_path / "attention.safetensors", ["a", "b", "c"])
    loaded = OnlineHead(ENC, settings)
    loaded.load(tmp_path / "attention.safetensors")
    vectors = torch.randn(6, ENC)
    torch.testing.assert_close(loaded.user_vectors(vectors, recent, item_text),
                               head.user_vectors(vectors, recent, item_text))
    with pytest.raises(CheckpointError, match=r"head\.sequence 'attention'"):
        OnlineHead(ENC, HeadSettings(dim=8)).load(tmp_path / "attention.safetensors")
    OnlineHead(ENC, HeadSettings(dim=8)).save(tmp_path / "weighted.safetensors", [])
    with pytest.raises(CheckpointError, match=r"head\.sequence 'weighted'"):
        loaded.load(tmp_path / "weighted.safetensors")


def test_a_checkpoint_names_more_items_than_the_head_has_met(tmp_path: Path) -> None:
    """Items loaded (a catalogue, an items topic) but not yet scored: their rows are saved too."""
    head = OnlineHead(ENC, HeadSettings(dim=8, negatives=4), capacity=4)
    head.learn(examples(4, torch.tensor([0, 1, 2, 3])), torch.randn(4, ENC))
    ids = [str(i) for i in range(10)]
    head.save(tmp_path / "head.safetensors", ids)
    loaded = OnlineHead(ENC, HeadSettings(dim=8, negatives=4), capacity=4)
    assert loaded.load(tmp_path / "head.safetensors") == ids
    torch.testing.assert_close(loaded.model.item_ids.weight[:4], head.model.item_ids.weight[:4])
    assert loaded.capacity >= 10 and not loaded.model.item_ids.weight[4:10].any()
