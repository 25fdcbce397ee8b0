"""Small PyTorch modules the registry tests save and rebuild by class path."""

import torch


class TinyNet(torch.nn.Module):
    def __init__(self, n_in: int = 4, hidden: int = 8, n_out: int = 2):
        super().__init__()
        self.hidden = torch.nn.Linear(n_in, hidden)
        self.out = torch.nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


class DictNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 1)
        self.b = torch.nn.Linear(2, 1)

    def forward(self, left, right):
        return self.a(left) + self.b(right)


class NeedsArgs(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.lin = torch.nn.Linear(width, 1)

    def forward(self, x):
        return self.lin(x)
