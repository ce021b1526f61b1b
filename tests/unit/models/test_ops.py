import pytest
import torch

from suite.models.ops import check_divisible, image_gradient, pad_to_multiple


def test_image_gradient_hand_computed():
    x = torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 3.0, 3.0]]]])  # (1, 1, 2, 3)
    grad = image_gradient(x)
    assert grad.shape == (1, 2, 2, 3)
    # x-direction: right neighbour minus pixel, last column 0
    assert torch.equal(grad[0, 0], torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]]))
    # y-direction: lower neighbour minus pixel, last row 0
    assert torch.equal(grad[0, 1], torch.tensor([[-1.0, 1.0, -1.0], [0.0, 0.0, 0.0]]))


def test_image_gradient_channel_order_and_5d():
    x = torch.rand(2, 3, 8, 8)
    grad = image_gradient(x)
    assert grad.shape == (2, 6, 8, 8)
    # first C channels are x-gradients of channels 0..C-1, last C the y-gradients
    assert torch.allclose(grad[:, 1, :, :-1], x[:, 1, :, 1:] - x[:, 1, :, :-1])
    assert torch.allclose(grad[:, 4, :-1, :], x[:, 1, 1:, :] - x[:, 1, :-1, :])
    stack = torch.rand(2, 4, 3, 8, 8)
    assert torch.equal(image_gradient(stack)[:, 2], image_gradient(stack[:, 2]))


def test_image_gradient_of_constant_is_zero_and_rejects_2d():
    assert torch.count_nonzero(image_gradient(torch.full((1, 3, 5, 7), 0.3))) == 0
    with pytest.raises(ValueError, match="shape"):
        image_gradient(torch.zeros(4, 4))


def test_check_divisible_message_names_size_and_depth():
    check_divisible(torch.zeros(1, 3, 32, 64), 5)
    with pytest.raises(ValueError, match=r"48x48.*2\*\*depth = 32 \(depth 5\)"):
        check_divisible(torch.zeros(1, 3, 48, 48), 5)


def test_pad_to_multiple_4d_and_5d():
    x = torch.rand(1, 2, 5, 6)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 8, 8) and size == (5, 6)
    assert torch.equal(padded[..., :5, :6], x)
    assert torch.equal(padded[..., 7, :6], x[..., 4, :])  # replicated bottom row
    padded5, _ = pad_to_multiple(torch.rand(1, 2, 3, 5, 6), 4)
    assert padded5.shape == (1, 2, 3, 8, 8)
