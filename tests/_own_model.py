"""Tiny torch modules exported to ONNX, and model cards for them (tests of your own model)."""

from __future__ import annotations

import torch


class TinyEmbedder(torch.nn.Module):
    """A small conv net: (n, 3, s, s) -> (n, 16)."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=2)
        self.pool = torch.nn.AvgPool2d(5)  # 30x30 -> 6x6
        self.fc = torch.nn.Linear(8 * 36, 16)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


class TinyClassifier(torch.nn.Module):
    """NHWC grey input (n, s, s, 1) -> logits over ``k`` classes."""

    def __init__(self, k, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 6, 3)
        self.fc = torch.nn.Linear(6, k)

    def forward(self, x):
        h = torch.relu(self.conv(x.permute(0, 3, 1, 2))).mean(dim=(2, 3))
        return self.fc(h)


def export(module, shape, path):
    module.eval()
    torch.onnx.export(module, torch.zeros(*shape), str(path), dynamo=False,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "n"}, "output": {0: "n"}})
    return path


def write_card(path, **fields):
    import yaml

    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path
