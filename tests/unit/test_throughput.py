"""suite/throughput.py and the GPU-feeding switches of suite/training.py: prefetching, chunked
inference, the per-stage step breakdown, channels-last weights. CUDA-only checks skip on the CPU."""

import copy
import math
import pickle
import threading

import pytest
import torch
from torch import nn

from suite.config import StageConfig
from suite.data.streaming import ImageCache
from suite.methods.rcae.crd import CRD
from suite.methods.rcae.model import RcAE
from suite.models.ops import to_channels_last
from suite.throughput import BreakdownLog, amp_dtype, in_chunks, inference_batch, prefetched
from suite.training import train_stage

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_prefetched_yields_the_same_batches_in_order_and_raises_where_the_reader_failed():
    batches = [torch.full((2,), float(i)) for i in range(7)]
    for depth in (0, 1, 3):
        got = list(prefetched(iter(batches), depth))
        assert len(got) == 7 and all(torch.equal(a, b) for a, b in zip(got, batches))

    def broken():
        yield torch.zeros(1)
        raise OSError("disk gone")

    it = prefetched(broken(), 2)
    assert torch.equal(next(it), torch.zeros(1))
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_prefetched_stops_its_reader_when_the_consumer_stops_early():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield torch.tensor([i])
            i += 1

    it = prefetched(endless(), 2)
    assert next(it).item() == 0
    it.close()
    count = len(produced)
    assert count <= 5  # the reader is at most a few batches ahead and then stops
    # zip(index_batches, prefetched(...)) stops before asking for the end marker: the reader,
    # with every batch delivered and the queue full, must still end when the consumer leaves.
    it = prefetched(iter([torch.zeros(1)] * 3), 1)
    for _, _ in zip(range(3), it):
        pass
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "rcsuite-prefetch" and t.is_alive()]


def test_inference_batch_bounds_megapixels_per_chunk():
    assert inference_batch(128, 2.0) == 16  # capped: the cpu/demo/tiny sizes keep batch 16
    assert inference_batch(512, 2.0) == 7
    assert inference_batch(1024, 2.0) == 1
    assert inference_batch(1024, 0.1) == 1  # never below one image
    assert inference_batch(256, 1.0, cap=8) == 8


def test_in_chunks_equals_one_call_for_per_image_networks():
    torch.manual_seed(0)
    net = RcAE(width=8, depth=2).eval()
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        whole = net(x)
        assert torch.allclose(in_chunks(net, x, size=2), whole, atol=1e-6)
        calls = []
        in_chunks(lambda t: calls.append(len(t)) or t, x, size=2)
        assert calls == [2, 2, 1]


class BuiltLoss:
    """A loss with separate input building: ``compute`` must receive what ``build_inputs`` built."""

    def __init__(self):
        self.built = []

    def build_inputs(self, batch, g):
        inputs = (batch * 2.0, torch.randint(0, 10, (1,), generator=g))
        self.built.append(inputs)
        return inputs

    def compute(self, model, inputs, g):
        assert inputs is self.built[-1]
        return (model(inputs[0]) - 1.0).abs().mean()


def test_train_stage_fills_a_step_breakdown_of_finite_non_negative_numbers():
    torch.manual_seed(0)
    model, log = nn.Linear(4, 1), BreakdownLog()
    loss = BuiltLoss()
    train_stage("stage1", model, loss, torch.rand(10, 4), StageConfig(epochs=3, batch_size=4),
                device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), breakdown=log,
                log=lambda s: None)
    entry = log.stages["stage1"]
    assert entry["images"] == 30 and entry["steps"] == 9 and len(loss.built) == 9
    for key in ("seconds", "data_s", "inputs_s", "compute_s", "hooks_s", "images_per_s"):
        assert math.isfinite(entry[key]) and entry[key] >= 0, key
    assert entry["seconds"] > 0 and entry["images_per_s"] > 0
    assert entry["data_s"] + entry["inputs_s"] + entry["compute_s"] <= entry["seconds"] * 1.01
    assert not any(k.startswith("peak_") or k == "gpu_busy" for k in entry)  # CUDA-only fields
    assert log.notes == {}


def test_prefetching_and_checkpointing_do_not_change_what_a_stage_learns():
    data = torch.rand(12, 3, 16, 16)

    def run(prefetch, checkpointing):
        torch.manual_seed(0)
        model = RcAE(width=8, depth=2)

        def loss_fn(m, batch, g):
            return (m(batch, 2) - batch).abs().mean()

        train_stage("s", model, loss_fn, data, StageConfig(epochs=2, batch_size=4), device=torch.device("cpu"),
                    generator=torch.Generator().manual_seed(1), prefetch=prefetch,
                    activation_checkpointing=checkpointing, log=lambda s: None)
        return model.state_dict()

    plain = run(0, False)
    for prefetch, checkpointing in ((2, False), (1, True)):
        other = run(prefetch, checkpointing)
        assert all(torch.allclose(plain[k], other[k], rtol=1e-5, atol=1e-7) for k in plain)


@pytest.mark.parametrize("make", [lambda: RcAE(width=8, depth=2), lambda: CRD(in_ch=6, width=4, levels=2)])
def test_channels_last_keeps_values_and_stores_conv_weights_nhwc(make):
    torch.manual_seed(0)
    model = make().eval()
    converted = to_channels_last(copy.deepcopy(model))
    x = torch.rand(2, 3, 16, 16) if isinstance(model, RcAE) else torch.rand(2, 3, 6, 16, 16)
    with torch.no_grad():
        assert torch.allclose(converted(x), model(x), atol=1e-5)
    formats = {p.dim(): p.is_contiguous(memory_format=torch.channels_last if p.dim() == 4 else
                                        torch.channels_last_3d)
               for p in converted.parameters() if p.dim() in (4, 5)}
    assert formats and all(formats.values())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), converted.state_dict().values()))


def test_the_image_cache_survives_pickling_with_a_fresh_lock():
    cache = ImageCache(1 << 20)
    cache.put("a", torch.zeros(3, 4, 4).numpy())
    back = pickle.loads(pickle.dumps(cache))
    assert len(back) == 0 and back.put("b", torch.zeros(3, 4, 4).numpy()) and "b" in back


def test_amp_is_float16_off_cuda():
    assert amp_dtype(torch.device("cpu")) == torch.float16  # unused there: the CPU trains in float32


@needs_cuda
def test_cuda_stage_records_peak_memory_and_busy_share_or_why_not():
    model, log = RcAE(width=8, depth=2), BreakdownLog()
    train_stage("stage1", model, lambda m, b, g: (m(b, 2) - b).abs().mean(), torch.rand(8, 3, 32, 32),
                StageConfig(epochs=2, batch_size=4), device=torch.device("cuda"),
                generator=torch.Generator().manual_seed(0), breakdown=log, channels_last=True, prefetch=2,
                log=lambda s: None)
    entry = log.stages["stage1"]
    assert entry["peak_allocated_mb"] > 0 and entry["peak_reserved_mb"] >= entry["peak_allocated_mb"]
    assert ("gpu_busy" in entry and 0 <= entry["gpu_busy"] <= 1) or "gpu_busy" in log.notes.get("stage1", "")
    if torch.cuda.is_bf16_supported():
        assert amp_dtype(torch.device("cuda")) == torch.bfloat16
