"""Initialize a PyTorch module with onnx-reinit, then train one step.

    python3 init_torch_module.py
"""
import torch

import onnx_reinit.torch

torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
    torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))
x = torch.randn(8, 3, 32, 32)
report = onnx_reinit.torch.init_(net, x, seed=1)
for t in (t for t in report["tensors"] if t["action"] == "rewritten"):
    print(f"{t['name']:20} {t['role']:14} {t['strategy']:16} std {t['achieved_std']:.4f}")
print("unmapped parameters:", report["torch"]["unmapped"] or "none")

opt = torch.optim.SGD(net.parameters(), lr=0.01)
loss = torch.nn.functional.cross_entropy(net(x), torch.arange(8) % 10)
loss.backward()
opt.step()
print(f"one training step: loss {loss.item():.4f}")
