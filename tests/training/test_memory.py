"""The up-front memory estimate (xlnet_tf.training.memory) against peak resident memory
measured here for XLNet-base pretraining steps (bench/bench_compare.py, float32)."""
import pytest

from xlnet_tf.training import memory

BASE = dict(n_params=116.8e6, n_layer=12, d_model=768, n_head=12, two_stream=True)


@pytest.mark.parametrize("batch,seq,mem,measured_gib", [
    (4, 128, 96, 3.67),      # pretrain 4 x 128, memory 96: 3,753 MiB
    (4, 512, 384, 6.71),     # pretrain 4 x 512, memory 384: 6,876 MiB
    (8, 512, 384, 10.6),     # pretrain 8 x 512, memory 384: 10,897 MiB
])
def test_estimate_is_within_its_stated_factor_of_measurements(batch, seq, mem, measured_gib):
    est = memory.estimate_training_bytes(batch_size=batch, seq_len=seq, mem_len=mem, **BASE)
    ratio = est / memory.GIB / measured_gib
    assert 1 / memory.SLACK <= ratio <= memory.SLACK, ratio


def test_absurd_length_is_refused_with_the_estimate(monkeypatch):
    monkeypatch.setattr(memory, "machine_memory_bytes", lambda: 24 * memory.GIB)
    with pytest.raises(ValueError, match=r"--seq_len=100000 would need about [\d.]+ GiB.*"
                                         r"this machine has 24.0 GiB"):
        memory.check_training_fits("--seq_len=100000", batch_size=16, seq_len=100000,
                                   mem_len=0, **BASE)
    # the committed small recipe fits easily
    need = memory.check_training_fits("ok", n_params=5.3e6, n_layer=4, d_model=256, n_head=4,
                                      batch_size=32, seq_len=128, mem_len=64, two_stream=True)
    assert need < 4 * memory.GIB
