"""The three architectures: the masks hold (measured by perturbing inputs, compared with the masks
the modules report), each objective builds what it promises, the floors are honest, and the
comparison figures and words come from the models and fits they describe."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from scaling.analysis.archplots import loss_vs_compute
from scaling.analysis.laws import FitOptions, fit_study
from scaling.analysis.laws.forms import ChinchillaLaw
from scaling.analysis.laws.groups import comparison_statements
from scaling.experiment.losses import (
    FLOOR_NOTES,
    evaluate,
    generator,
    loss_sum,
    make_batch,
    objective_floor,
    train_loss,
)
from scaling.experiment.models import ModelShape, Transformer
from scaling.experiment.models.patterns import attention_patterns, combined_encoder_decoder

CTX = 32  # encoder-decoder: 5 noise tokens in 2 spans, encoder reads 29 positions, decoder writes 7
ATOL = 1e-6  # "unchanged"; a real dependence moves logits by far more than this


def shape(arch: str, attention: str = "sdpa", **kw) -> ModelShape:
    return ModelShape(
        d_model=32, n_layers=2, n_heads=2, ctx=CTX, arch=arch, attention=attention, **kw
    )


def rows(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(97, 123, (n, CTX + 1), generator=torch.Generator().manual_seed(seed))


def bump(x: torch.Tensor, pos: int) -> torch.Tensor:
    """x with the token at `pos` of every row changed to another data byte."""
    y = x.clone()
    y[:, pos] = (y[:, pos] + 1 - 97) % 26 + 97
    return y


@torch.no_grad()
def dependence(model: Transformer, inputs: dict, key: str) -> torch.Tensor:
    """(output positions, positions of inputs[key]) bool: does output t move when input s
    changes?"""
    base = model(**inputs)
    cols = []
    for s in range(inputs[key].size(1)):
        moved = model(**{**inputs, key: bump(inputs[key], s)})
        cols.append((moved - base).abs().amax(dim=(0, 2)) > ATOL)
    return torch.stack(cols, dim=1)


# ---- the masks, measured -------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["sdpa", "matmul"])
def test_decoder_future_tokens_never_change_earlier_predictions(attention):
    model = Transformer(shape("decoder", attention), seed=0).eval()
    dep = dependence(model, {"idx": rows()[:, :-1]}, "idx")
    causal = torch.ones(CTX, CTX, dtype=torch.bool).tril()
    assert torch.equal(dep, causal)  # output t moves iff the changed token s <= t
    assert torch.equal(model.masks()["self"], causal)  # and it is the mask the modules report


@pytest.mark.parametrize("attention", ["sdpa", "matmul"])
def test_encoder_masked_position_sees_both_sides(attention):
    s = shape("encoder", attention)
    model = Transformer(s, seed=0).eval()
    batch = make_batch(s, rows(), generator(0, 0))
    m = (
        int(torch.nonzero(batch.predict[0, 8:-8])[0]) + 8
    )  # a masked position with room on both sides
    left = next(i for i in range(m - 1, -1, -1) if not batch.predict[0, i])
    right = next(i for i in range(m + 1, CTX) if not batch.predict[0, i])
    with torch.no_grad():
        base = model(**batch.inputs)[0, m]
        for side in (left, right):
            moved = model(idx=bump(batch.inputs["idx"], side))[0, m]
            assert (moved - base).abs().max() > 1e-4, (
                f"prediction at masked {m} ignores token {side}"
            )
    dep = dependence(model, {"idx": rows()[:, :-1]}, "idx")
    assert dep.all() and model.masks()["self"].all()  # every position sees every position


@pytest.mark.parametrize("attention", ["sdpa", "matmul"])
def test_encoder_decoder_reads_the_encoder_and_never_later_decoder_positions(attention):
    s = shape("encoder_decoder", attention)
    model = Transformer(s, seed=0).eval()
    inputs = make_batch(s, rows(), generator(0, 0)).inputs
    assert inputs["idx"].shape[1] == s.src_len and inputs["tgt"].shape[1] == s.tgt_len
    from_encoder = dependence(model, inputs, "idx")  # (tgt_len, src_len)
    from_decoder = dependence(model, inputs, "tgt")  # (tgt_len, tgt_len)
    masks = model.masks()
    assert from_encoder.all() and torch.equal(from_encoder, masks["cross"])
    assert torch.equal(from_decoder, torch.ones(s.tgt_len, s.tgt_len, dtype=torch.bool).tril())
    assert torch.equal(from_decoder, masks["decoder self"])
    assert masks["encoder self"].all() and masks["encoder self"].shape == (s.src_len, s.src_len)


def test_wrong_call_for_the_arch_is_refused():
    x = rows()[:, :-1]
    with pytest.raises(ValueError, match="model\\(idx, tgt\\)"):
        Transformer(shape("encoder_decoder"))(x)
    with pytest.raises(ValueError, match="model\\(idx\\)"):
        Transformer(shape("encoder"))(x, x)


# ---- the objectives ------------------------------------------------------------------------


def test_decoder_objective_is_next_token_prediction():
    s = shape("decoder")
    model, r = Transformer(s, seed=1), rows(4, seed=2)
    total, count = loss_sum(model, make_batch(s, r, generator(0, 0)))
    plain = F.cross_entropy(model(r[:, :-1]).flatten(0, 1), r[:, 1:].flatten())
    assert count == 4 * CTX and torch.allclose(total / count, plain, rtol=1e-6)


def test_masked_objective_masks_exactly_the_predicted_positions():
    s = shape("encoder", mask_fraction=0.25)
    r = rows(5)
    b = make_batch(s, r, generator(7, 3))
    assert s.n_masked == 8 and (b.predict.sum(dim=1) == 8).all()
    idx = b.inputs["idx"]
    assert (idx[b.predict] == s.vocab_size).all()  # <mask> is the first id past the data's bytes
    assert torch.equal(idx[~b.predict], r[:, :-1][~b.predict]) and torch.equal(b.targets, r[:, :-1])
    again, other = make_batch(s, r, generator(7, 3)), make_batch(s, r, generator(7, 4))
    assert torch.equal(again.predict, b.predict)  # a pure function of (seed, step): resume is exact
    assert not torch.equal(other.predict, b.predict)


def reassemble(s: ModelShape, src: torch.Tensor, tgt: torch.Tensor) -> list[int]:
    """Undo span corruption: put each sentinel's span back into the encoder's text."""
    spans, current = {}, None
    for t in tgt.tolist():
        if t >= s.vocab_size:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in src.tolist():
        out += spans[t] if t >= s.vocab_size else [t]
    return out


@pytest.mark.parametrize("density, mean_span", [(0.15, 3.0), (0.4, 1.5)])
def test_span_corruption_is_t5s_and_loses_nothing(density, mean_span):
    s = shape("encoder_decoder", noise_density=density, mean_span=mean_span)
    r = rows(6, seed=5)
    b = make_batch(s, r, generator(1, 9))
    src, tgt, dec_in = b.inputs["idx"], b.targets, b.inputs["tgt"]
    sentinels = list(range(s.vocab_size, s.vocab_size + s.n_spans))
    for i in range(r.size(0)):
        assert reassemble(s, src[i], tgt[i]) == r[i, :-1].tolist()  # nothing lost, nothing invented
        assert [
            t for t in src[i].tolist() if t >= s.vocab_size
        ] == sentinels  # one sentinel per span, in order
        assert [t for t in tgt[i].tolist() if t >= s.vocab_size] == sentinels
        assert tgt[i, 0] == sentinels[0] and all(
            tgt[i, j + 1] < s.vocab_size
            for j in torch.nonzero(tgt[i] >= s.vocab_size).flatten().tolist()
        )  # no empty span
    assert src.shape == (6, s.src_len) and tgt.shape == (6, s.n_noise + s.n_spans)
    assert (dec_in[:, 0] == s.vocab_size + s.n_spans).all() and torch.equal(
        dec_in[:, 1:], tgt[:, :-1]
    )
    assert b.predict is None  # every target token is predicted, sentinels included
    layouts = {tuple(t.tolist()) for t in src >= s.vocab_size}
    assert len(layouts) > 1  # spans land in different places in different rows


@pytest.mark.parametrize("arch", ["decoder", "encoder", "encoder_decoder"])
def test_validation_loss_is_fixed_and_independent_of_the_batch_size(arch):
    s = shape(arch)
    model, r = Transformer(s, seed=0), rows(6, seed=3)
    a, b = evaluate(model, s, r, batch_size=6), evaluate(model, s, r, batch_size=4)
    assert a == pytest.approx(b, rel=1e-6)
    assert a == pytest.approx(math.log(s.n_vocab), abs=0.1)  # a fresh model guesses about uniformly
    t0, t1 = train_loss(model, s, r, seed=0, step=0), train_loss(model, s, r, seed=0, step=0)
    assert torch.equal(t0, t1)


def test_a_few_steps_learn_every_objective():
    for arch in ("encoder", "encoder_decoder"):
        s = shape(arch)
        model = Transformer(s, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        r = rows(4, seed=1)
        losses = []
        for step in range(40):
            loss = train_loss(model, s, r, seed=0, step=step % 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.6 * losses[0], arch


class _Source:
    def __init__(self, floor):
        self.entropy_floor = floor


def test_floors_are_exact_or_absent_with_a_reason():
    assert objective_floor(shape("decoder"), _Source(1.25)) == (1.25, None)
    for arch in ("encoder", "encoder_decoder"):
        floor, note = objective_floor(shape(arch), _Source(1.25))
        assert floor is None and note == FLOOR_NOTES[arch] and "not computed" in note
    floor, note = objective_floor(shape("decoder"), _Source(None))
    assert floor is None and "unknown" in note


# ---- figures and words ---------------------------------------------------------------------


def test_attention_figure_draws_the_models_masks():
    plot = attention_patterns(ctx=CTX)
    drawn = plot.data["masks"]
    for arch in ("decoder", "encoder", "encoder_decoder"):
        model = Transformer(ModelShape(d_model=16, n_layers=1, n_heads=1, ctx=CTX, arch=arch))
        for role, m in model.masks().items():
            assert np.array_equal(drawn[arch][role], m.numpy()), (arch, role)
    images = [ax.images[0].get_array() for ax in plot.figure.axes if ax.images]
    assert np.array_equal(images[0], drawn["decoder"]["self"])
    assert np.array_equal(images[2], combined_encoder_decoder(drawn["encoder_decoder"]))
    S = drawn["encoder_decoder"]["encoder self"].shape[0]
    assert not images[2][:S, S:].any()  # the encoder never attends to the decoder


def law_points(law: ChinchillaLaw, group: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(np.geomspace(1e4, 1e6, 6), np.geomspace(1e5, 1e7, 6))
    N, D = N.ravel(), D.ravel()
    loss = law.predict(N, D) * np.exp(0.003 * rng.standard_normal(N.size))
    return pd.DataFrame(dict(N=N, D=D, C=6 * N * D, loss=loss, group=group, entropy_floor=law.E))


@pytest.fixture(scope="module")
def studies():
    laws = {
        "decoder": ChinchillaLaw(E=1.0, A=60.0, B=400.0, alpha=0.35, beta=0.40),
        "encoder": ChinchillaLaw(E=1.2, A=60.0, B=400.0, alpha=0.35, beta=0.40),
        "encoder_decoder": ChinchillaLaw(E=1.0, A=300.0, B=400.0, alpha=0.60, beta=0.40),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            g: fit_study(law_points(law, g, i), options=FitOptions(n_boot=30, seed=1))
            for i, (g, law) in enumerate(laws.items())
        }


def test_comparison_says_which_exponents_differ(studies):
    lines = comparison_statements(studies)
    alpha = next(line for line in lines if line.startswith("alpha"))
    beta = next(line for line in lines if line.startswith("beta"))
    assert (
        "differs beyond" in alpha and "decoder is lower than encoder_decoder" in alpha
    )  # 0.35 vs 0.60
    assert "(decoder and encoder overlap)" in alpha  # same true alpha: no claimed difference
    assert "overlap" in beta and "differs" not in beta  # every true beta is 0.40


def test_loss_against_compute_has_every_group_and_frontier(studies):
    plot = loss_vs_compute(studies)
    groups = plot.data["groups"]
    assert list(groups) == ["decoder", "encoder", "encoder_decoder"]
    for name, g in groups.items():
        assert len(g["C"]) == studies[name].n_points
        law = studies[name].approach3.law
        assert np.allclose(g["frontier"], law.loss_at_budget(g["frontier_C"]))
        assert g["floor"] == pytest.approx(studies[name].points["entropy_floor"].iloc[0])


# ---- the sweep preset, and a small version of it run end to end ----------------------------


def test_architectures_preset_runs_one_grid_for_all_three(tmp_path):
    from scaling.experiment.sweep import plan

    specs = plan([f"runs_dir={tmp_path}", "sweep=architectures"])
    grids = {}
    for s in specs:
        grids.setdefault(s.shape.arch, set()).add((s.size, s.D))
    assert set(grids) == {"decoder", "encoder", "encoder_decoder"}
    assert grids["decoder"] == grids["encoder"] == grids["encoder_decoder"]  # the same N x D grid
    assert len(grids["decoder"]) >= 12 and len({s.run_id for s in specs}) == len(specs)
    assert {s.sweep for s in specs} == {"arch"}


def test_small_architectures_sweep_trains_all_three_and_reports_them_side_by_side(tmp_path):
    from scaling.analysis.tables import load_points
    from scaling.cli import main as cli_main

    # the preset's three archs on 3 rungs x 3 budgets at ctx 32; probe documents off (they do not
    # fit in 32 tokens, and the probes score decoders only)
    tiny = [
        "sweep=architectures",
        f"runs_dir={tmp_path}",
        "model.size=s1,s2,s3",
        "model.ctx=32",
        "train.tokens=5120,10240,20480",
        "train.batch_size=8",
        "data.val_tokens=1024",
        "train.n_evals=2",
        "data.synthetic.probes.fraction=0",
        "train.precision=fp32",
        "train.device=cpu",
        "train.checkpoint_every=0",
        "sweep.report=false",
    ]
    assert cli_main(["sweep", *tiny]) == 0
    table = pd.read_csv(tmp_path / "arch" / "runs.csv")
    assert len(table) == 27 and (table["status"] == "ok").all()
    by_arch = table.groupby("arch")
    assert set(by_arch.groups) == {"decoder", "encoder", "encoder_decoder"}
    assert by_arch["N"].max()["encoder_decoder"] > by_arch["N"].max()["decoder"]  # two stacks
    dec, others = table[table["arch"] == "decoder"], table[table["arch"] != "decoder"]
    assert dec["entropy_floor"].notna().all() and others["entropy_floor"].isna().all()
    assert others["entropy_floor_note"].str.startswith("not computed").all()
    # every family learns: its largest run beats its smallest
    for arch, g in by_arch:
        assert g.sort_values("C")["loss"].iloc[-1] < g.sort_values("C")["loss"].iloc[0], arch
    out = tmp_path / "analysis"
    assert (
        cli_main(
            [
                "report",
                str(tmp_path / "arch"),
                "--group",
                "arch",
                "--bootstrap",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    md = (out / "report.md").read_text()
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    for arch in ("decoder", "encoder", "encoder_decoder"):
        assert any(line.startswith(f"| {arch} |") for line in table_rows), (
            arch
        )  # one row per family
        assert f"## Group: {arch}" in md
    assert set(load_points([tmp_path / "arch"], group="arch").frame["group"]) == {
        "decoder",
        "encoder",
        "encoder_decoder",
    }


def test_a_group_without_interval_is_named_and_the_rest_still_compared(studies):
    broken = dict(studies)
    s = studies["encoder"]
    broken["encoder"] = type(s)(**{**s.__dict__, "samples": {}})  # as if its bootstrap had failed
    alpha = next(line for line in comparison_statements(broken) if line.startswith("alpha"))
    assert "no 95% interval for encoder" in alpha
    assert (
        "among the others differs beyond" in alpha
        and "decoder is lower than encoder_decoder" in alpha
    )
