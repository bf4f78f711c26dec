"""Tiny models: seeded construction, padded log-probs, seeded sampling, both architectures."""

from __future__ import annotations

import pytest
import torch

from evaluator.tinylm.model import ModelConfig, build_model, sample, sequence_logps

VOCAB, PAD, EOS = 20, 0, 1


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_same_seed_same_weights(arch: str) -> None:
    config = ModelConfig(arch=arch)
    a, b, c = (
        build_model(config, vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, seed=s)
        for s in (0, 0, 1)
    )
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not all(
        torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_logps_sum_completion_tokens_and_ignore_padding(arch: str) -> None:
    model = build_model(
        ModelConfig(arch=arch), vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, seed=0
    )
    ids = torch.tensor([[5, 6, 7, 8, EOS], [5, 6, 9, EOS, PAD]])  # (2, 5), row 1 right-padded
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 1, 1, 0]])
    got = sequence_logps(model, ids, mask)  # (2,)
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids[:1]).logits, dim=-1)[0]  # (5, V)
        short = torch.log_softmax(model(input_ids=ids[1:, :4]).logits, dim=-1)[0]  # (4, V)
    want0 = full[1, 7] + full[2, 8] + full[3, EOS]
    want1 = short[1, 9] + short[2, EOS]
    assert got[0].item() == pytest.approx(want0.item(), abs=1e-5)
    assert got[1].item() == pytest.approx(want1.item(), abs=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_sampling_is_seeded_and_masks_after_eos(arch: str) -> None:
    model = build_model(
        ModelConfig(arch=arch), vocab_size=VOCAB, pad_token_id=PAD, eos_token_id=EOS, seed=0
    )
    prompts = torch.randint(2, VOCAB, (64, 3), generator=torch.Generator().manual_seed(0))

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return sample(
            model,
            prompts,
            max_new_tokens=6,
            eos_token_id=EOS,
            pad_token_id=PAD,
            generator=torch.Generator().manual_seed(seed),
        )

    (seqs, mask), (again, _), (other, _) = draw(0), draw(0), draw(1)
    assert torch.equal(seqs, again) and not torch.equal(seqs, other)
    assert torch.equal(seqs[:, :3], prompts) and not mask[:, :3].any()
    for row, m in zip(seqs, mask, strict=True):
        generated = row[3:][m[3:].bool()].tolist()
        if EOS in generated:
            assert generated.index(EOS) == len(generated) - 1  # the mask ends at the first eos
            assert (row[3 + len(generated) :] == PAD).all()
        else:
            assert len(generated) == 6
