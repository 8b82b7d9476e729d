# tutorial/src/train.py
import argparse

import torch
import torch.optim as optim

from model import Net
from runlab import Run  # was: from azureml.core import Run

# ADDITIONAL CODE: get the run from the current context
run = Run.get_context()


def cifar10(data_path):
    """CIFAR-10's training set from its on-disk format (``<data_path>/cifar-10-batches-py/data_batch_*``,
    pickled), as torchvision.datasets.CIFAR10(root=data_path) reads it, normalized as the tutorial's
    transforms do (ToTensor, then Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))."""
    import pickle
    from pathlib import Path

    import numpy as np

    folder = Path(data_path) / "cifar-10-batches-py"
    rows, labels = [], []
    for path in sorted(folder.glob("data_batch_*")):
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        rows.append(np.asarray(batch[b"data"], dtype=np.uint8))
        labels.extend(batch[b"labels"])
    if not rows:
        raise SystemExit(f"no CIFAR-10 training batches in {folder}")
    images = torch.from_numpy(np.concatenate(rows).reshape(-1, 3, 32, 32)).float() / 255.0
    return torch.utils.data.TensorDataset((images - 0.5) / 0.5, torch.tensor(labels))


def cifar10_like(n, seed=0):
    """CIFAR-10-shaped data (3x32x32 images, 10 classes) made here, as nothing can be downloaded.
    Each class has its own colour pattern plus noise, so the network has something to learn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    patterns = torch.rand(10, 3, 32, 32, generator=g)
    images = patterns[labels] + 0.25 * torch.randn(n, 3, 32, 32, generator=g)
    return torch.utils.data.TensorDataset(images, labels)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--learning_rate", type=float, default=0.003)  # 0.001 in the tutorial, which has 25x more batches
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--data_path", default=None, help="a folder holding cifar-10-batches-py (part 4)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--log_interval", type=int, default=2000,
                        help="log the mean loss every this many mini-batches (fewer on a set too small for that)")
    args = parser.parse_args()
    torch.manual_seed(0)  # the same run gives the same curve

    trainset = cifar10(args.data_path) if args.data_path else cifar10_like(args.samples)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=4, shuffle=True)
    # the tutorial logs every 2,000 mini-batches of CIFAR-10's 12,500 an epoch: on a smaller set, 5 times an epoch
    interval = max(1, min(args.log_interval, len(trainloader) // 5))

    # define convolutional network
    net = Net()

    # set up pytorch loss /  optimizer
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=args.learning_rate, momentum=args.momentum)

    # train the network
    for epoch in range(args.epochs):

        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            # unpack the data
            inputs, labels = data

            # zero the parameter gradients
            optimizer.zero_grad()

            # forward + backward + optimize
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()

            # print statistics
            running_loss += loss.item()
            if i % interval == interval - 1:
                loss = running_loss / interval
                run.log('loss', loss)  # ADDITIONAL CODE: log loss metric
                print(f'epoch={epoch + 1}, batch={i + 1:5}: loss {loss:.2f}')
                running_loss = 0.0

    print('Finished Training')
