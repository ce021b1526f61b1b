import sys
import types

import pytest
import torch

from suite.methods.hfr.anomaly_map import hfr_anomaly_map, hfr_image_score, hfr_loss, hfr_residuals
from suite.methods.hfr.model import HFRAE
from suite.models.resnet import build_backbone, resnet18, wide_resnet50_2




@pytest.fixture(scope="module")
def hfr18() -> HFRAE:
    torch.manual_seed(0)
    return HFRAE("resnet18", pretrained=False)


def _torchvision_resnet_keys(blocks: list[int], bottleneck: bool) -> set[str]:
    """torchvision's ResNet state_dict key names, written out from its naming scheme."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = {"conv1.weight", "fc.weight", "fc.bias"} | {f"bn1.{s}" for s in bn}
    convs = 3 if bottleneck else 2
    for stage, count in enumerate(blocks, start=1):
        for b in range(count):
            prefix = f"layer{stage}.{b}"
            for c in range(1, convs + 1):
                keys.add(f"{prefix}.conv{c}.weight")
                keys |= {f"{prefix}.bn{c}.{s}" for s in bn}
            # a projection shortcut where the shape changes: first block of stages 2-4, and of
            # stage 1 too for bottlenecks (64 -> 256 channels)
            if b == 0 and (stage > 1 or bottleneck):
                keys.add(f"{prefix}.downsample.0.weight")
                keys |= {f"{prefix}.downsample.1.{s}" for s in bn}
    return keys


def test_resnet18_state_dict_keys_match_torchvision():
    state = resnet18().state_dict()
    # torchvision resnet18: stem 1 conv + 5 BN entries = 6; 8 basic blocks x (2 convs + 2 x 5 BN) = 96;
    # 3 downsamples x (1 conv + 5 BN) = 18; fc weight + bias = 2 -> 122.
    assert len(state) == 122
    assert set(state) == _torchvision_resnet_keys([2, 2, 2, 2], bottleneck=False)
    for key in ["layer3.1.bn2.running_var", "fc.weight", "layer2.0.downsample.1.num_batches_tracked", "bn1.bias"]:
        assert key in state
    assert "layer1.0.downsample.0.weight" not in state
    assert state["fc.weight"].shape == (1000, 512)
    assert state["layer3.0.downsample.0.weight"].shape == (256, 128, 1, 1)
    assert sum(p.numel() for p in resnet18().parameters()) == 11_689_512  # torchvision's count


def test_wide_resnet50_2_keys_and_widths():
    model = wide_resnet50_2()
    state = model.state_dict()
    assert len(state) == 320
    assert set(state) == _torchvision_resnet_keys([3, 4, 6, 3], bottleneck=True)
    assert state["layer1.0.conv1.weight"].shape == (128, 64, 1, 1)  # width_per_group 128 doubles the inner width
    assert state["layer1.0.conv3.weight"].shape == (256, 128, 1, 1)
    assert state["layer4.2.conv2.weight"].shape == (1024, 1024, 3, 3)
    assert sum(p.numel() for p in model.parameters()) == 68_883_240  # torchvision's count


def test_keys_and_shapes_equal_torchvision_when_installed():
    torchvision = pytest.importorskip("torchvision")
    ours = resnet18().state_dict()
    theirs = torchvision.models.resnet18().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(1)
    source, flag = build_backbone("resnet18")
    assert flag is False
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    loaded, flag = build_backbone("resnet18", pretrained=False, weights_file=path)
    assert flag is True
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    model = HFRAE("resnet18", weights_file=str(path))
    assert model.pretrained is True
    assert torch.equal(model.encoder.layer3[1].bn2.running_var, source.layer3[1].bn2.running_var)


def test_bad_weights_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_backbone("resnet18", weights_file=tmp_path / "nowhere.pth")
    partial = tmp_path / "partial.pth"
    state = resnet18().state_dict()
    del state["layer3.1.bn2.running_var"]
    torch.save(state, partial)
    with pytest.raises(RuntimeError, match="partial.pth.*layer3.1.bn2.running_var"):
        build_backbone("resnet18", weights_file=partial)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="garbage.pth"):
        build_backbone("resnet18", weights_file=garbage)
    with pytest.raises(ValueError, match="resnet34"):
        build_backbone("resnet34")


def test_missing_torchvision_raises_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # "import torchvision" now fails
    with pytest.raises(ImportError, match=r"pip install 'rcsuite\[vision\]'"):
        build_backbone("resnet18", pretrained=True)


def test_pretrained_goes_through_the_torchvision_weights_api(monkeypatch):
    torch.manual_seed(2)
    reference = resnet18().state_dict()
    calls = []

    class FakeWeights:
        @staticmethod
        def get_state_dict(progress=True):
            return reference

    def get_model_weights(name):
        calls.append(name)
        return types.SimpleNamespace(DEFAULT=FakeWeights)

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(get_model_weights=get_model_weights)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    model, flag = build_backbone("resnet18", pretrained=True)
    assert flag is True and calls == ["resnet18"]
    assert torch.equal(model.conv1.weight, reference["conv1.weight"])


def test_residual_formula_by_hand():
    # pixel 0: enc (3, 4) -> (0.6, 0.8); dec (1, 0): 0.5 * (0.4^2 + 0.8^2) = 0.4 (= 1 - cos)
    # pixel 1: enc (3, 4), dec (6, 8): same direction -> 0
    # pixel 2: enc (0, 2), dec (0, -5): opposite -> 0.5 * 2^2 = 2
    enc = torch.tensor([[3.0, 3.0, 0.0], [4.0, 4.0, 2.0]]).view(1, 2, 1, 3)
    dec = torch.tensor([[1.0, 6.0, 0.0], [0.0, 8.0, -5.0]]).view(1, 2, 1, 3)
    (res,) = hfr_residuals([enc], [dec])
    assert res.shape == (1, 1, 1, 3)
    assert torch.allclose(res.flatten(), torch.tensor([0.4, 0.0, 2.0]), atol=1e-6)


def test_loss_is_the_mean_over_levels_of_mean_residuals():
    enc = [torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4), torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)]
    dec = [torch.tensor([0.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4), torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)]
    # level 1: orthogonal everywhere -> 1; level 2: equal -> 0; loss = (1 + 0) / 2
    assert torch.allclose(hfr_loss(enc, dec), torch.tensor(0.5))


def test_anomaly_map_of_constant_residuals_and_score():
    residuals = [torch.full((2, 1, 16, 16), 0.1), torch.full((2, 1, 8, 8), 0.2), torch.full((2, 1, 4, 4), 0.3)]
    amap = hfr_anomaly_map(residuals, 64, sigma=4.0)
    assert amap.shape == (2, 1, 64, 64)
    assert torch.allclose(amap, torch.full_like(amap, 0.6), atol=1e-5)  # resize and blur keep constants
    area = hfr_anomaly_map(residuals, (64, 32), normalise_by_area=True)
    assert area.shape == (2, 1, 64, 32)
    assert torch.allclose(area, torch.full_like(area, 0.1 / 256 + 0.2 / 64 + 0.3 / 16), atol=1e-6)
    peak = [torch.zeros(1, 1, 8, 8)]
    peak[0][0, 0, 3, 3] = 1.0
    peaked = hfr_anomaly_map(peak, 32, sigma=4.0)
    assert torch.equal(hfr_image_score(peaked), peaked.flatten(1).amax(1))
    row, col = divmod(int(peaked.flatten().argmax()), 32)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1  # cell 3 of 8 covers pixels 12-15 of 32


def test_forward_shapes_resnet18_at_64(hfr18):
    enc, dec = hfr18(torch.rand(2, 3, 64, 64))
    expected = [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4)]
    assert [tuple(f.shape) for f in enc] == expected
    assert [tuple(f.shape) for f in dec] == expected
    residuals = hfr_residuals(enc, dec)
    assert [tuple(r.shape) for r in residuals] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]
    assert hfr_anomaly_map(residuals, 64).shape == (2, 1, 64, 64)


def test_encoder_frozen_decoder_trained(hfr18):
    hfr18.train()
    hfr18.zero_grad(set_to_none=True)
    enc, dec = hfr18(torch.rand(2, 3, 32, 32))
    hfr_loss(enc, dec).backward()
    assert all(not p.requires_grad and p.grad is None for p in hfr18.encoder.parameters())
    decoder_grads = [p.grad for p in hfr18.decoders.parameters()]
    assert all(g is not None for g in decoder_grads)
    assert sum(float(g.abs().sum()) for g in decoder_grads) > 0


def test_encoder_stays_in_eval_mode(hfr18):
    hfr18.train()
    assert hfr18.training and hfr18.decoders.training
    assert not hfr18.encoder.training
    assert all(not m.training for m in hfr18.encoder.modules())
    encoder_stats = {k: v.clone() for k, v in hfr18.encoder.state_dict().items()}
    decoder_stats = hfr18.decoders[0].convs[0][1].running_mean.clone()
    hfr18(torch.rand(2, 3, 32, 32) * 3)
    for key, value in hfr18.encoder.state_dict().items():
        assert torch.equal(value, encoder_stats[key]), key  # BN running stats untouched
    assert not torch.equal(hfr18.decoders[0].convs[0][1].running_mean, decoder_stats)  # decoder BN does train
    hfr18.eval()
    assert not hfr18.decoders.training


def test_inputs_are_imagenet_normalised_inside(hfr18):
    hfr18.eval()
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        direct = hfr18.encoder((x - mean) / std)
    enc, _ = hfr18(x)
    assert all(torch.allclose(a, b) for a, b in zip(enc, direct))
    assert "mean" not in hfr18.state_dict()  # constants are not checkpointed


def test_wide_resnet50_2_shapes_at_32():
    model = HFRAE("wide_resnet50_2")
    with torch.no_grad():
        enc, dec = model(torch.rand(1, 3, 32, 32))
    expected = [(1, 256, 8, 8), (1, 512, 4, 4), (1, 1024, 2, 2)]
    assert [tuple(f.shape) for f in enc] == expected == [tuple(f.shape) for f in dec]
