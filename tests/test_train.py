"""The training loop's batching."""

from forgetlab.config import OptimSpec
from forgetlab.train import micro_batches


def test_training_loop_keeps_the_given_order_without_shuffle():
    spec = OptimSpec(method="finetune", batch_size=4)
    batches = micro_batches(10, spec, seed=0, rank=0, world_size=1, shuffle=False)
    assert [next(batches) for _ in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    shuffled = micro_batches(10, spec, seed=0, rank=0, world_size=1)
    assert next(shuffled) != [0, 1, 2, 3]
