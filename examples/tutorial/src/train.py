# tutorial/src/train.py
import argparse

import torch
import torch.optim as optim

from model import Net
from runlab import Run  # was: from azureml.core import Run

# ADDITIONAL CODE: get the run from the current context
run = Run.get_context()


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
    args = parser.parse_args()
    torch.manual_seed(0)  # the same run gives the same curve

    trainset = cifar10_like(args.samples)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=4, shuffle=True)

    # define convolutional network
    net = Net()

    # set up pytorch loss /  optimizer
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=args.learning_rate, momentum=args.momentum)

    # train the network
    for epoch in range(2):

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
            if i % 100 == 99:
                loss = running_loss / 100
                run.log('loss', loss)  # ADDITIONAL CODE: log loss metric
                print(f'epoch={epoch + 1}, batch={i + 1:5}: loss {loss:.2f}')
                running_loss = 0.0

    print('Finished Training')
