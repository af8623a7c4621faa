"""The DiT backbone (Peebles & Xie 2023): exact cases, the UNet's contract, checkpoints and misuse."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import diffusion_lab as dl
from diffusion_lab.dit import Attention, DiTBlock, modulate, patchify, position_embedding_2d, unpatchify
from diffusion_lab.pretrained import load_checkpoint, save_checkpoint


def _trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values (the zero-initialised layers too), as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def test_patchify_takes_squares_in_row_major_order_and_unpatchify_inverts_it():
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    tokens = patchify(x, 3)  # (2, 4, 27)
    assert tokens.shape == (2, 4, 27)
    for i in range(2):
        for j in range(2):
            patch = x[:, :, 3 * i:3 * i + 3, 3 * j:3 * j + 3]  # (B, C, P, P)
            assert torch.equal(tokens[:, 2 * i + j], patch.permute(0, 2, 3, 1).reshape(2, -1))
    assert torch.equal(unpatchify(tokens, 3, 6, 6), x)


def test_patch_embedding_is_a_strided_convolution():
    torch.manual_seed(0)
    net = dl.DiT(in_channels=2, image_size=8, patch_size=2, width=16, depth=1, heads=2)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    linear = net.embed.double()
    # The linear map's input is ordered (row, column, channel): a conv kernel (D, C, P, P).
    kernel = linear.weight.reshape(16, 2, 2, 2).permute(0, 3, 1, 2)
    conv = F.conv2d(x, kernel, linear.bias, stride=2).flatten(2).transpose(1, 2)  # (B, N, D)
    assert (linear(patchify(x, 2)) - conv).abs().max() < 1e-12


def test_attention_over_one_token_is_the_linear_map_w_o_w_v():
    # softmax over a single key is 1, so the output is W_o (W_v h + b_v) + b_o, whatever q and k are.
    torch.manual_seed(0)
    attn = Attention(width=12, heads=3).double()
    h = torch.randn(5, 1, 12, dtype=torch.float64)  # (B, N = 1, D)
    w_v, b_v = attn.qkv.weight[24:], attn.qkv.bias[24:]
    expected = (h @ w_v.T + b_v) @ attn.proj.weight.T + attn.proj.bias
    assert (attn(h) - expected).abs().max() < 1e-12


def test_a_dit_with_one_patch_is_the_image_through_linear_maps_and_mlps():
    # With P = H there is one token: attention is linear, and the whole net is a per-image map.
    torch.manual_seed(0)
    net = _trained_like(dl.DiT(in_channels=1, image_size=4, patch_size=4, width=8, depth=2, heads=2)).double()
    x = torch.randn(6, 1, 4, 4, dtype=torch.float64)
    t = torch.randint(1, 1001, (6,))
    batched = net(x, t)
    one_by_one = torch.cat([net(x[i:i + 1], t[i:i + 1]) for i in range(6)])
    assert (batched - one_by_one).abs().max() < 1e-12


def test_adaln_zero_every_block_starts_as_the_identity_and_the_model_outputs_zero():
    torch.manual_seed(0)
    block = DiTBlock(width=16, heads=4, mlp_ratio=4.0)
    h, c = torch.randn(3, 5, 16), torch.randn(3, 16)
    assert torch.equal(block(h, c), h)
    net = dl.DiT(**dl.dit_config((1, 8, 8), "tiny", num_classes=10))
    x, t = torch.randn(4, 1, 8, 8), torch.randint(1, 1001, (4,))
    assert torch.equal(net(x, t, torch.tensor([0, 3, 9, 10])), torch.zeros_like(x))


def test_modulate_is_shift_and_scale_per_example():
    h = torch.randn(2, 3, 4)
    shift, scale = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.equal(modulate(h, torch.zeros(2, 4), torch.zeros(2, 4)), h)
    assert torch.allclose(modulate(h, shift, scale)[1, 2], h[1, 2] * (1 + scale[1]) + shift[1])


def test_position_embedding_gives_every_patch_its_own_features():
    pos = position_embedding_2d(4, 4, 16)
    assert pos.shape == (16, 16)
    assert torch.cdist(pos, pos).add(torch.eye(16)).min() > 0.1  # no two patches share their features
    row = position_embedding_2d(1, 4, 16)
    assert torch.equal(pos[:4], row)  # the first row of patches: row 0, columns 0..3


def test_output_shape_learned_variance_and_float64():
    torch.manual_seed(0)
    net = _trained_like(dl.DiT(in_channels=3, image_size=8, patch_size=4, width=16, depth=1, heads=2,
                               learns_variance=True))
    x, t = torch.randn(2, 3, 8, 8), torch.randint(1, 1001, (2,))
    assert net(x, t).shape == (2, 6, 8, 8)
    assert net.learns_variance and not dl.DiT().learns_variance
    out64 = net.double()(x.double(), t)
    assert out64.dtype == torch.float64


def test_null_class_is_the_default_label_and_an_unconditional_dit_refuses_labels():
    torch.manual_seed(0)
    net = _trained_like(dl.DiT(image_size=8, width=16, depth=1, heads=2, num_classes=10))
    x, t = torch.randn(3, 1, 8, 8), torch.randint(1, 1001, (3,))
    assert torch.equal(net(x, t), net(x, t, torch.full((3,), 10)))
    assert not torch.equal(net(x, t), net(x, t, torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match="unconditional"):
        dl.DiT(image_size=8, width=16, depth=1, heads=2)(x, t, torch.zeros(3, dtype=torch.long))


def test_tiny_dit_matches_the_tiny_unet_in_parameters():
    dit = dl.DiT(**dl.dit_config((1, 8, 8), "tiny", num_classes=10))
    unet = dl.UNet(**dl.unet_config((1, 8, 8), "tiny", num_classes=10))
    assert abs(dl.parameter_count(dit) / dl.parameter_count(unet) - 1) < 0.02


def test_trains_and_samples_through_the_one_contract(tmp_path):
    images, labels = dl.load_images("digits8", split="train")
    torch.manual_seed(0)
    net = dl.DiT(image_size=8, width=16, depth=1, heads=2, num_classes=10)
    schedule = dl.cosine_schedule(100)
    result = dl.train_diffusion(dl.Denoiser(net, schedule), images[:64], labels=labels[:64], steps=20,
                                batch_size=16, label_dropout=0.15, progress=False)
    assert result.loss_history[-5:].mean() < result.loss_history[:5].mean()
    den = result.denoiser.replace(labels=3, guidance=1.0, clip=1.0)
    assert dl.ddim_sample(den, (4, 1, 8, 8), steps=5).shape == (4, 1, 8, 8)
    x = dl.sample_images(result.denoiser, 3, sampler="ddpm", steps=5, labels=torch.tensor([1, 2, 3]))
    assert x.shape == (3, 1, 8, 8) and x.abs().max() <= 1
    # The checkpoint round trip: rebuilt from its config, with the image models' x̂0 clip.
    config = dict(image_size=8, width=16, depth=1, heads=2, num_classes=10)
    save_checkpoint(tmp_path / "dit.pt", result.ema_model, kind="dit", config=config,
                    info=dict(schedule="cosine", T=100))
    loaded = load_checkpoint(tmp_path / "dit.pt")
    assert isinstance(loaded.model, dl.DiT) and loaded.denoiser.clip == 1.0
    xt, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 50])
    assert (loaded.model(xt, t) - result.ema_model(xt, t)).abs().max() < 1e-2  # float16 storage


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=8, patch_size=3), r"patch_size 3 does not divide image_size 8; choose one of: 1, 2, 4, 8"),
    (dict(image_size=8, patch_size=0), r"patch_size must be an int"),
    (dict(width=48, heads=5), r"heads.*choose heads in: 1, 2, 3, 4, 6, 8"),
    (dict(width=18, heads=2), r"divisible by 4"),
    (dict(num_classes=0), r"num_classes"),
])
def test_bad_configurations_name_the_argument_and_the_valid_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dl.DiT(**kwargs)


def test_bad_inputs_and_names():
    with pytest.raises(ValueError, match="unknown DiT size 'huge'; choose one of: tiny, small, base"):
        dl.dit_config((1, 8, 8), "huge")
    with pytest.raises(ValueError, match="patch_size 3 does not divide image_size 28"):
        dl.dit_config((1, 28, 28), "tiny", patch_size=3)
    with pytest.raises(ValueError, match="square"):
        dl.dit_config((1, 8, 6))
    net = dl.DiT(image_size=8, width=16, depth=1, heads=2)
    with pytest.raises(ValueError, match=r"DiT expects x of shape \(B, 1, 8, 8\)"):
        net(torch.randn(2, 1, 6, 6), torch.ones(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"DiT expects t of shape \(2,\)"):
        net(torch.randn(2, 1, 8, 8), torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="patch_size 3 does not divide"):
        patchify(torch.randn(1, 1, 8, 8), 3)
