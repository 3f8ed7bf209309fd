"""The model: shapes resolve and validate, the ladder is one shape family, attention is causal,
init is a pure function of the seed, and both attention kernels compute the same thing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from scaling.errors import ConfigError
from scaling.experiment.models import ModelShape, Transformer, param_counts, resolve_shape

MODEL_YAML = Path(__file__).resolve().parents[1] / "conf" / "model" / "transformer.yaml"
TINY = ModelShape(d_model=32, n_layers=2, n_heads=2, ctx=16)


@pytest.fixture(scope="module")
def decoder_cfg():
    return OmegaConf.load(MODEL_YAML)


def tokens(shape: ModelShape, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, shape.vocab_size, (batch, shape.ctx), generator=torch.Generator().manual_seed(seed)
    )


# ---- config: rung, overrides, validation -------------------------------------------------


def test_size_picks_the_rung_and_explicit_values_override_it(decoder_cfg):
    s2 = decoder_cfg.ladder.s2
    shape = resolve_shape(OmegaConf.merge(decoder_cfg, {"size": "s2"}))
    assert (shape.d_model, shape.n_layers, shape.n_heads) == (s2.d_model, s2.n_layers, s2.n_heads)
    assert shape.d_ff == 4 * s2.d_model and shape.arch == "decoder" and shape.ctx == decoder_cfg.ctx

    over = resolve_shape(
        OmegaConf.merge(decoder_cfg, {"size": "s2", "n_heads": 1, "ctx": 64, "d_ff": 50})
    )
    assert (over.d_model, over.n_layers, over.n_heads, over.ctx, over.d_ff) == (
        s2.d_model,
        s2.n_layers,
        1,
        64,
        50,
    )


def test_a_plain_dict_without_size_works():
    shape = resolve_shape({"size": None, "d_model": 24, "n_layers": 3, "n_heads": 3, "ctx": 8})
    assert shape == ModelShape(d_model=24, n_layers=3, n_heads=3, ctx=8, d_ff=96)


@pytest.mark.parametrize(
    "override, words",
    [
        ({"d_model": 0}, ["model.d_model", "positive"]),
        ({"n_layers": -2}, ["model.n_layers", "positive"]),
        ({"ctx": 0}, ["model.ctx", "positive"]),
        ({"d_model": 64.5}, ["model.d_model", "integer"]),
        ({"d_model": 48, "n_heads": 5}, ["model.n_heads=5", "d_model=48", "divisors"]),
        ({"size": "s99"}, ["model.size='s99'", "s1", "s8"]),
        ({"arch": "gpt"}, ["model.arch='gpt'", "decoder", "encoder_decoder"]),
        ({"arch": "encoder", "mask_fraction": 1.5}, ["model.mask_fraction=1.5", "(0, 1)"]),
        ({"arch": "encoder", "mask_fraction": "lots"}, ["model.mask_fraction='lots'", "number"]),
        ({"arch": "encoder_decoder", "noise_density": 0}, ["model.noise_density=0", "(0, 1)"]),
        ({"arch": "encoder_decoder", "mean_span": 0.5}, ["model.mean_span=0.5", ">= 1"]),
        (
            {"arch": "encoder_decoder", "noise_density": 0.9, "mean_span": 1},
            ["spans", "noise_density"],
        ),
        ({"attention": "flash"}, ["model.attention='flash'", "sdpa", "matmul"]),
        ({"dmodel": 64}, ["dmodel", "d_model"]),
        ({"size": None}, ["model.d_model", "model.size"]),
    ],
)
def test_bad_shapes_raise_one_line_config_errors(decoder_cfg, override, words):
    cfg = OmegaConf.to_container(decoder_cfg)
    cfg.update(override)
    with pytest.raises(ConfigError) as err:
        resolve_shape(cfg)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_model_shape_validates_on_construction_and_is_frozen():
    with pytest.raises(ConfigError, match="n_heads=3 does not divide"):
        ModelShape(d_model=32, n_layers=1, n_heads=3, ctx=8)
    with pytest.raises(AttributeError):
        TINY.d_model = 64  # type: ignore[misc]


# ---- the ladder ---------------------------------------------------------------------------


def test_ladder_is_one_shape_family_spanning_two_decades(decoder_cfg):
    every = [
        resolve_shape(OmegaConf.merge(decoder_cfg, {"size": name})) for name in decoder_cfg.ladder
    ]
    every_n = [param_counts(s).N for s in every]
    assert every_n == sorted(every_n), (
        "rungs, the in-between ones included, are listed in order of N"
    )
    family = [
        name for name in decoder_cfg.ladder if re.fullmatch(r"s[1-9]", name)
    ]  # s0, s1h, ...: in between
    shapes = [resolve_shape(OmegaConf.merge(decoder_cfg, {"size": name})) for name in family]
    aspect = {s.d_model / s.n_layers for s in shapes}
    head_dims = {s.head_dim for s in shapes}
    assert len(aspect) == 1 and len(head_dims) == 1, (aspect, head_dims)
    ns = [param_counts(s).N for s in shapes]
    assert ns == sorted(ns) and len(set(ns)) == len(ns), "rungs must grow in N"
    assert ns[-1] / ns[0] >= 8
    assert 5e3 <= ns[0] <= 2e4 and 1e6 <= ns[-1] <= 3e6  # roughly 10k to 2M, as the sweeps assume


# ---- the module ---------------------------------------------------------------------------


def test_same_seed_same_weights_and_the_global_rng_is_untouched():
    state = torch.get_rng_state()
    a, b, c = Transformer(TINY, seed=3), Transformer(TINY, seed=3), Transformer(TINY, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        if not name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            assert not torch.equal(pa, pc), name


@pytest.mark.parametrize("attention", ["sdpa", "matmul"])
def test_attention_is_causal(attention):
    shape = ModelShape(d_model=32, n_layers=2, n_heads=2, ctx=16, attention=attention)
    model = Transformer(shape, seed=0).eval()
    x = tokens(shape)
    t = 9
    future = x.clone()
    future[:, t] = (future[:, t] + 1) % shape.vocab_size
    with torch.no_grad():
        base, changed = model(x), model(future)
    assert base.shape == (2, shape.ctx, shape.vocab_size)
    # positions before t cannot see token t; positions from t on must
    assert torch.allclose(base[:, :t], changed[:, :t], rtol=0, atol=1e-6)
    assert (base[:, t:] - changed[:, t:]).abs().amax(dim=-1).min() > 1e-4


def test_sdpa_and_matmul_attention_agree_in_fp32():
    x = tokens(TINY)
    outs = {}
    for attention in ("sdpa", "matmul"):
        model = Transformer(
            ModelShape(d_model=32, n_layers=2, n_heads=2, ctx=16, attention=attention), seed=1
        )
        logits = model(x)
        F.cross_entropy(logits[:, :-1].reshape(-1, 256), x[:, 1:].reshape(-1)).backward()
        outs[attention] = (logits.detach(), model.blocks[0].attn.c_attn.weight.grad)
    assert torch.allclose(outs["sdpa"][0], outs["matmul"][0], rtol=0, atol=1e-5)
    assert torch.allclose(outs["sdpa"][1], outs["matmul"][1], rtol=1e-4, atol=1e-7)


def test_too_long_input_is_refused():
    with pytest.raises(ValueError, match="ctx=16"):
        Transformer(TINY)(torch.zeros(1, 17, dtype=torch.long))


def test_a_few_adamw_steps_fit_a_fixed_batch():
    # gradients reach every weight: a tiny model memorises one batch of random bytes quickly
    model = Transformer(TINY, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = tokens(TINY, batch=4, seed=5)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, 256), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(5.545, abs=0.05)  # ln(256): uniform guess at init
    assert losses[-1] < 0.7 * losses[0]
