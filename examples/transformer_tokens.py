"""A small transformer block with LayerNorm on synthetic tokens, recorded by ics.watch.

    python examples/transformer_tokens.py --out runs/transformer --steps 50

The task: predict each token's successor mod the vocabulary. The block's attention is written with
plain Linear layers (q, k, v, o); its feed-forward is Linear -> LayerNorm -> GELU -> Linear, so each of
its Linear layers is a site the detector finds (a pre-norm LayerNorm, which takes the residual stream
rather than a Linear's output, could not be placed; see docs/watch.md).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

import ics_cli as ics

VOCAB, DIM, LENGTH = 32, 64, 16


class Block(nn.Module):
    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.up, self.norm, self.act, self.down = nn.Linear(dim, 4 * dim), nn.LayerNorm(4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

    def forward(self, x):
        n, t, d = x.shape
        split = lambda z: z.view(n, t, self.heads, d // self.heads).transpose(1, 2)   # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = (q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)).softmax(-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.down(self.act(self.norm(self.up(x))))


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.block = Block(DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, tokens):
        return self.head(self.block(self.embed(tokens)))


def main(out: str, steps: int = 50, every: int = 10) -> Path:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = TinyTransformer()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_fn(logits, y):
        return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))

    probe = torch.randint(VOCAB, (32, LENGTH), generator=gen)
    with ics.watch(model, out=out, every=every, probe=probe, quantities=["grad_ics", "relative_loss"],
                   loss_fn=loss_fn, optimizer=opt, steps=steps, seed=0) as w:
        for step in range(steps):
            x = torch.randint(VOCAB, (32, LENGTH), generator=gen)
            y = (x + 1) % VOCAB
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            w.step(loss=loss, x=x, y=y)
            opt.step()
    return Path(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/transformer")
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    print(main(args.out, args.steps))
