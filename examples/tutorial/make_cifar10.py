"""Write a small CIFAR-10 in its real on-disk format into ./data (nothing can be downloaded here).

    python make_cifar10.py [--images 2000] [--out data]

``data/cifar-10-batches-py/`` gets ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and
``batches.meta``, pickled as the real dataset is (dicts with ``b'data'``: uint8 rows of 3072 values,
red then green then blue planes of 32x32; ``b'labels'``; ``b'filenames'``; ``b'batch_label'``), so
``src/train.py --data_path`` reads the real CIFAR-10 the same way when you have it: put the real
``cifar-10-batches-py`` folder in ./data instead. Each class has its own colour pattern plus noise,
so the network has something to learn.
"""

import argparse
import pickle
from pathlib import Path

import numpy as np

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def batch(rng, patterns, count, name):
    labels = rng.integers(0, 10, count)
    images = patterns[labels] + rng.normal(0, 70, (count, 3072))
    return {b"batch_label": name.encode(), b"labels": labels.tolist(),
            b"data": np.clip(images, 0, 255).astype(np.uint8),
            b"filenames": [f"{LABELS[l]}_{i:05d}.png".encode() for i, l in enumerate(labels)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="training images in all (default 2000)")
    parser.add_argument("--out", default="data", help="folder to write cifar-10-batches-py into (default ./data)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    patterns = rng.uniform(40, 216, (10, 3072))
    folder = Path(args.out) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    per_batch = max(1, args.images // 5)
    for n in range(1, 6):
        data = batch(rng, patterns, per_batch, f"training batch {n} of 5")
        (folder / f"data_batch_{n}").write_bytes(pickle.dumps(data))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(rng, patterns, per_batch, "testing batch 1 of 1")))
    meta = {b"label_names": [l.encode() for l in LABELS], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    print(f"wrote {5 * per_batch} training and {per_batch} test images in CIFAR-10's format to {folder}")


if __name__ == "__main__":
    main()
