"""Recipe of notebook 02's classifiers: Jain & Wallace's attention classifiers on utils.polarity.

    python -m utils.zoo.train_classifiers                    # every classifier -> models/jw-classifiers/
    python -m utils.zoo.train_classifiers --only decisive-lstm-additive-seed0
    python -m utils.zoo.train_classifiers --smoke            # one epoch of two models into a temporary folder

J&W's training (their `configurations.py`): Adam with amsgrad, lr 1e-3, weight decay 1e-5 on every
parameter but the attention's, batch 32, 8 epochs, the best epoch on the dev set kept (here by dev loss: dev accuracy reaches 1.0 within
an epoch or two, and the earliest such epoch would keep a barely trained attention). For each variant
(decisive, redundant): the BiLSTM with additive attention on 5 seeds (the seed-variance baseline), the
BiLSTM with frozen uniform attention (W&P) and the non-contextual `average` encoder with additive
attention (W&P's diagnostic), 3 seeds each. Each classifier's test accuracy and training time go in
classifiers.json. Always run with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from utils import polarity
from utils.attention_classifiers import MANIFEST, AttentionClassifier, ClassifierConfig, classifier_folder, classifier_name

SEEDS = {("lstm", "additive"): range(5), ("lstm", "uniform"): range(3), ("average", "additive"): range(3)}
N_TRAIN, N_DEV, N_TEST = 4000, 500, 1000
EPOCHS, BATCH, LR, WEIGHT_DECAY = 8, 32, 1e-3, 1e-5


def all_names() -> list[tuple[str, str, str, int]]:
    return [(v, enc, att, s) for v in polarity.VARIANTS for (enc, att), seeds in SEEDS.items() for s in seeds]


def accuracy(model: AttentionClassifier, data: tuple) -> float:
    tokens, mask, labels, _ = data
    with torch.no_grad():
        return ((model(tokens, mask)[0] > 0).float() == labels).float().mean().item()


def mean_loss(model: AttentionClassifier, data: tuple) -> float:
    tokens, mask, labels, _ = data
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(model(tokens, mask)[0], labels).item()


def train_one(variant: str, encoder: str, attention: str, seed: int, epochs: int = EPOCHS) -> tuple[AttentionClassifier, dict]:
    """Train one classifier; returns it (best dev epoch) and its record."""
    start = time.time()
    train = polarity.examples(N_TRAIN, variant, polarity.TRAIN_SEED)
    dev = polarity.encode(polarity.examples(N_DEV, variant, polarity.DEV_SEED))
    test = polarity.encode(polarity.examples(N_TEST, variant, polarity.TEST_SEED))
    torch.manual_seed(seed)
    cfg = ClassifierConfig(len(polarity.vocabulary()), encoder, attention)
    model = AttentionClassifier(cfg)
    attention_params = {id(p) for p in (model.attention.parameters() if model.attention else [])}
    groups = [{"params": [p for p in model.parameters() if id(p) not in attention_params], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in model.parameters() if id(p) in attention_params], "weight_decay": 0.0}]
    optimiser = torch.optim.Adam(groups, lr=LR, amsgrad=True)
    order = torch.Generator().manual_seed(seed)
    best, best_loss, best_epoch = None, float("inf"), -1
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(train), generator=order).split(BATCH):
            tokens, mask, labels, _ = polarity.encode([train[i] for i in idx])
            loss = F.binary_cross_entropy_with_logits(model(tokens, mask)[0], labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        dev_loss = mean_loss(model, dev)
        if dev_loss < best_loss:
            best, best_loss, best_epoch = {k: v.clone() for k, v in model.state_dict().items()}, dev_loss, epoch
    model.load_state_dict(best)
    record = dict(variant=variant, seed=seed, config=asdict(cfg), best_epoch=best_epoch, dev_loss=round(best_loss, 4),
                  dev_accuracy=round(accuracy(model, dev), 4),
                  test_accuracy=round(accuracy(model, test), 4), seconds=round(time.time() - start, 1))
    return model.eval(), record


def main(argv: list[str] | None = None) -> dict:
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="train one classifier by name (the others in classifiers.json are kept)")
    parser.add_argument("--smoke", action="store_true", help="one epoch of two classifiers into a temporary folder")
    parser.add_argument("--out", type=Path, help="output folder (default models/jw-classifiers)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = args.out or (Path(tempfile.mkdtemp(prefix="jw-smoke-")) if args.smoke else classifier_folder())
    out.mkdir(parents=True, exist_ok=True)
    runs = all_names()
    if args.only:
        runs = [r for r in runs if classifier_name(*r) == args.only]
        if not runs:
            parser.error(f"no classifier {args.only!r}; names: {', '.join(classifier_name(*r) for r in all_names())}")
    if args.smoke:
        runs = runs[:1] + runs[-1:]
    path = out / MANIFEST
    records = json.loads(path.read_text()) if path.exists() else {}
    for run in runs:
        name = classifier_name(*run)
        model, record = train_one(*run, epochs=1 if args.smoke else EPOCHS)
        save_file(model.state_dict(), str(out / f"{name}.safetensors"))
        records[name] = record
        print(f"{name}: test accuracy {record['test_accuracy']:.3f} (best epoch {record['best_epoch']}, {record['seconds']} s)")
        path.write_text(json.dumps(dict(sorted(records.items())), indent=1) + "\n")
    print(f"saved to {out}")
    return records


if __name__ == "__main__":
    main()
