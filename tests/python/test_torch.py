"""The PyTorch bridge on torchvision's ResNet-18, a small GPT with tied
embeddings and an LSTM: every parameter mapped, ties kept, the module's
weights equal to what the command writes for the exported file, and one
training step runs."""
import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")
import onnx_reinit.torch as ort  # noqa: E402
from conftest import run_cli  # noqa: E402


class Block(torch.nn.Module):
    def __init__(self, d, heads, n):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc = torch.nn.Linear(d, 4 * d)
        self.out = torch.nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(n, n)).view(1, 1, n, n) == 0)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = torch.softmax(att.masked_fill(self.mask[:, :, :t, :t], float("-inf")), dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))


class TinyGPT(torch.nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, n=16, layers=2):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, d)
        self.wpe = torch.nn.Parameter(torch.randn(n, d) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(d, heads, n) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(d)
        self.lm_head = torch.nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied

    def forward(self, idx):
        x = self.wte(idx) + self.wpe[: idx.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.lm_head(self.ln_f(x))


class TinyLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(16, 32, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(32, 5)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


def resnet18():
    import torchvision
    return torchvision.models.resnet18(num_classes=10), torch.randn(2, 3, 64, 64)


def gpt():
    return TinyGPT(), torch.randint(0, 64, (2, 16))


def lstm():
    return TinyLSTM(), torch.randn(4, 7, 16)


def targets(net, x):
    with torch.no_grad():
        y = net(x)
    return y.reshape(-1, y.shape[-1]).shape[0], y.shape[-1]


@pytest.mark.parametrize("make", [resnet18, gpt, lstm], ids=["resnet18", "gpt", "lstm"])
def test_init_equals_the_command_on_the_export(tmp, make):
    torch.manual_seed(0)
    net, x = make()
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    path = tmp / "export.onnx"
    path.write_bytes(ort.export(net, x))
    # Exporting traces the module in training mode: its buffers come back as they were.
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    run_cli(path, "-o", tmp / "cli.onnx", "--seed", "5", "-q")
    cli = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp / "cli.onnx")).graph.initializer}

    report = ort.init_(net, x, seed=5)
    t = report["torch"]
    assert t["unmapped"] == []
    names = [n for n, _ in ort.named_tensors(net)]
    assert set(names) <= set(t["mapped"])
    for name, tensor in list(ort.named_tensors(net)) + list(ort.named_tensors(net, "_buffers")):
        if name not in t["mapped"]:
            continue
        value = tensor.detach().numpy()
        assert value.tobytes() == cli[t["mapped"][name]].astype(value.dtype).tobytes(), name
    # Every weight was drawn anew (PyTorch's own initial values are gone).
    weights = [e["name"] for e in report["tensors"] if e["role"] == "weight"]
    assert weights and all(e["action"] == "rewritten" for e in report["tensors"]
                           if e["role"] == "weight")
    state = net.state_dict()
    for name in weights:
        assert not torch.equal(state[name], before[name]), name

    # One training step runs and moves the weights.
    n, classes = targets(net, x)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    y = net(x)
    loss = torch.nn.functional.cross_entropy(y.reshape(n, classes), torch.zeros(n, dtype=torch.long))
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    w = next(net.parameters()).detach().clone()
    opt.step()
    assert not torch.equal(w, next(net.parameters()).detach())


def test_presets_and_rules_reach_the_export(tmp):
    torch.manual_seed(0)
    net, x = gpt()
    path = tmp / "gpt.onnx"
    path.write_bytes(ort.export(net, x))
    run_cli(path, "-o", tmp / "cli.onnx", "--seed", "2", "--preset", "gpt2", "--rule",
            "*.fc.bias=normal(std=0.01)", "-q")
    cli = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp / "cli.onnx")).graph.initializer}
    ort.init_(net, x, seed=2, preset="gpt2", rules=["*.fc.bias=normal(std=0.01)"])
    for name, p in ort.named_tensors(net):
        if name in cli:
            assert p.detach().numpy().tobytes() == cli[name].tobytes(), name


def test_calibrate_with_a_batch_of_tensors(tmp):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 6 * 6, 4))
    x = torch.randn(4, 3, 8, 8)
    exported = ort.export(net, x)
    path = tmp / "cnn.onnx"
    path.write_bytes(exported)
    name = onnx.load_from_string(exported).graph.input[0].name
    (tmp / "data").mkdir()
    np.save(tmp / "data" / f"{name}.npy", x.numpy())
    run_cli(path, "-o", tmp / "cli.onnx", "--seed", "3", "--calibrate", "lsuv", "--data",
            tmp / "data", "-q")
    cli = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp / "cli.onnx")).graph.initializer}
    report = ort.init_(net, x, seed=3, calibrate="lsuv", data=x)
    assert any(t.get("lsuv_scale") not in (None, 1.0) for t in report["tensors"])
    for n, p in ort.named_tensors(net):
        assert p.detach().numpy().tobytes() == cli[n].tobytes(), n


def test_ties_stay_tied():
    torch.manual_seed(0)
    net, x = gpt()
    report = ort.init_(net, x, seed=1)
    assert net.lm_head.weight is net.wte.weight
    assert ["wte.weight", "lm_head.weight"] in report["torch"]["ties"]
    assert report["torch"]["mapped"]["lm_head.weight"] == report["torch"]["mapped"]["wte.weight"]


def test_unmapped_parameters_are_listed_and_warned():
    class Unused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used = torch.nn.Linear(4, 4)
            self.spare = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    net = Unused()
    spare = net.spare.weight.detach().clone()
    with pytest.warns(UserWarning, match="spare.weight"):
        report = ort.init_(net, torch.randn(2, 4))
    assert sorted(report["torch"]["unmapped"]) == ["spare.bias", "spare.weight"]
    assert torch.equal(net.spare.weight.detach(), spare)
