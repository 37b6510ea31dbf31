"""Train the shipped MNIST network on scikit-learn's handwritten digits, then look at its filters.

The lecture's exercises 3 and 5: build a CNN for digit classification, train it, and visualise
the convolution filters it learned. The network is ``architectures/mnist_cnn.yaml`` (the MNIST
net of pytorch/examples), built with ``shapecalc.to_torch`` for the 8x8 images of
``sklearn.datasets.load_digits`` (1,797 digits shipped inside scikit-learn: nothing is
downloaded). The spec does not write ``in_features`` for its first linear layer, so the same
spec fits 8x8 inputs: 32 and 64 channels of 3x3 convolutions take 8x8 to 4x4, pooling to
2x2, and the classifier sees 256 features instead of MNIST's 9,216.

It trains for a few seconds on the CPU, prints the accuracy on a held-out quarter of the
digits, and saves the state_dict::

    python examples/train_digits.py                      # writes digits_cnn.pt
    shapecalc filters digits_cnn.pt                      # the first conv's 32 filters, as text
    shapecalc filters digits_cnn.pt -o filters.png       # ... as a picture (needs matplotlib)

Needs torch and scikit-learn: ``pip install 'shapecalc-cnn[torch,examples]'``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parents[1] / "architectures" / "mnist_cnn.yaml"


def digits(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """scikit-learn's 8x8 digits as float tensors [N, 1, 8, 8] in 0..1, split 3:1 (stratified)."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return x_train, x_test, y_train, y_test


def build_model() -> Any:
    """The shipped MNIST spec as a torch model for 8x8 single-channel inputs."""
    import shapecalc
    from shapecalc.analysis import analyse

    spec = shapecalc.load_spec(str(SPEC))
    return shapecalc.to_torch(spec, analysis=analyse(spec, input=(1, 8, 8)))


def accuracy(model: Any, x: Any, y: Any) -> float:
    """The fraction of ``x`` that ``model`` classifies as ``y`` (evaluation mode)."""
    import torch

    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train(epochs: int = 10, seed: int = 0, log: Any = None) -> tuple[Any, float, dict[str, Any]]:
    """Train a fresh model; returns it, its held-out accuracy and a copy of its initial state_dict."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    x_train, x_test, y_train, y_test = digits(seed)
    model = build_model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        if log is not None:
            held_out = accuracy(model, x_test, y_test)
            log(f"epoch {epoch:2d}  loss {total / len(x_train):.4f}  held-out accuracy {held_out:.3f}")
    return model, accuracy(model, x_test, y_test), initial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="passes over the 1,347 training digits (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", default="digits_cnn.pt", help="where to save the state_dict")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # small batches: one thread is as fast, and leaves the other cores alone
    start = time.perf_counter()
    model, acc, _ = train(args.epochs, args.seed, log=print)
    seconds = time.perf_counter() - start
    print(f"held-out accuracy {acc:.1%} on 450 digits (chance: 10%), trained in {seconds:.1f} s")
    torch.save(model.state_dict(), args.out)
    print(f"saved the state_dict to {args.out}; look at the first convolution's filters with:")
    spec = SPEC.relative_to(Path.cwd()) if SPEC.is_relative_to(Path.cwd()) else SPEC
    print(f"  shapecalc filters {args.out} --spec {spec}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
