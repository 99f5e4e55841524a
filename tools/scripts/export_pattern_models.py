#!/usr/bin/python3
"""Exports the pattern models the pattern_models tests read (issue 17).

Usage: /usr/bin/python3 tools/scripts/export_pattern_models.py OUT_DIR [NAME ...]

Each model shows a graph pattern that exporters write and the analysis must
read right; the weights are random (structure is what is tested):
  logmel_kws        a keyword spotter with a log-mel front end: an STFT written
                    as a Conv1d with a Hann-windowed DFT basis, the power
                    spectrum, torchaudio's melscale_fbanks as a MatMul, then
                    log(mel + 1e-6) (the epsilon is an operand, not a bias),
                    a Conv1d and a Linear classifier
  sam_pe_folded     SAM's PositionEmbeddingRandom (segment_anything,
  sam_pe_unfolded   prompt_encoder.py): a coordinate grid [64, 64, 2] of
                    (cumsum(ones) - 0.5) / size, mapped to [-1, 1], times a
                    gaussian buffer G [2, 64], scaled by 2*pi, then sin and cos,
                    added to a patch-embedding Conv, then a 1x1 Conv head.
                    Folded: exported with constant folding, so the grid in
                    [-1, 1] is the MatMul's constant input; unfolded: without,
                    so the grid reaches the MatMul through Mul and Sub
  side_outputs_fp16 a matting/saliency net in the U^2-Net style: four encoder
                    stages, each with a side-output Conv upsampled to the input
                    size by F.interpolate(size=...) (so a Shape reads the side
                    output), then a sigmoid; the side probabilities are fused
                    by a 1x1 Conv. Exported in float32 and converted to float16
                    here the way onnxconverter-common's float16 converter does
                    with keep_io_types: float inputs and outputs stay float32
                    behind Casts, Resize stays in float32 between two Casts
  convtasnet        torchaudio.models.ConvTasNet, small: 2 sources, kernel 16,
                    64 encoder features, 2 layers in 1 stack (its mask
                    generator sums skip outputs into an accumulator that
                    starts at the constant 0.0)
Needs PyTorch 1.13, torchaudio 0.13 and onnx 1.12 (Debian: python3-torch,
python3-torchaudio, python3-onnx). The models are generated at test time, not
checked in; files newer than this script are kept.
"""

import math
import os

import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio

import export_fixture


class LogMelKws(nn.Module):
    """STFT as a Conv1d over a Hann-windowed DFT basis (as melspectrogram.onnx
    of openWakeWord writes it), mel filterbank, log with an epsilon."""

    def __init__(self, n_fft=256, hop=128, n_mels=40, sample_rate=16000, classes=12):
        super().__init__()
        self.bins = n_fft // 2 + 1
        t = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(self.bins, dtype=torch.float64)
        angle = 2 * math.pi * k[:, None] * t[None, :] / n_fft
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])
        self.stft = nn.Conv1d(1, 2 * self.bins, n_fft, stride=hop, bias=False)
        self.stft.weight.data = basis.float().unsqueeze(1)
        self.stft.weight.requires_grad_(False)
        fb = torchaudio.functional.melscale_fbanks(self.bins, 0.0, sample_rate / 2, n_mels,
                                                   sample_rate)
        self.register_buffer("mel_fb", fb)  # [bins, n_mels]
        self.conv = nn.Conv1d(n_mels, 32, 3, padding=1)
        self.fc = nn.Linear(32, classes)

    def forward(self, wav):  # [B, 1, samples]
        spec = self.stft(wav)
        re, im = spec[:, :self.bins], spec[:, self.bins:]
        power = re * re + im * im  # [B, bins, frames]
        mel = power.transpose(1, 2) @ self.mel_fb  # [B, frames, n_mels]
        logmel = torch.log(mel + 1e-6).transpose(1, 2)
        h = torch.relu(self.conv(logmel)).mean(dim=2)
        return self.fc(h)


class SamPositionEncoder(nn.Module):
    """segment_anything's PositionEmbeddingRandom on a fixed 64x64 grid (the
    grid a prompt decoder's dense positional encoding is computed on),
    added to a patch embedding."""

    def __init__(self, size=64, features=32, patch=4):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, features))
        grid = torch.ones((size, size))
        y_embed = (grid.cumsum(dim=0) - 0.5) / size
        x_embed = (grid.cumsum(dim=1) - 0.5) / size
        self.register_buffer("grid", torch.stack([x_embed, y_embed], dim=-1))  # [H, W, 2]
        self.patch_embed = nn.Conv2d(3, 2 * features, patch, stride=patch)
        self.head = nn.Conv2d(2 * features, 8, 1)

    def forward(self, image):  # [B, 3, 256, 256]
        coords = 2 * self.grid - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        pe = torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1).permute(2, 0, 1)
        return self.head(torch.relu(self.patch_embed(image) + pe))


class SideOutputNet(nn.Module):
    """Encoder stages with deep-supervision side outputs (U^2-Net, BASNet,
    MODNet's style): side Conv -> upsample to the input size -> sigmoid."""

    def __init__(self, widths=(16, 24, 32, 48)):
        super().__init__()
        stages, sides, c_in = [], [], 3
        for i, c in enumerate(widths):
            layers = [nn.MaxPool2d(2)] if i > 0 else []
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            stages.append(nn.Sequential(*layers))
            sides.append(nn.Conv2d(c, 1, 3, padding=1))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.sides = nn.ModuleList(sides)
        self.fuse = nn.Conv2d(len(widths), 1, 1)

    def forward(self, x):
        feat, probs = x, []
        for i, (stage, side) in enumerate(zip(self.stages, self.sides)):
            feat = stage(feat)
            s = side(feat)
            s = F.interpolate(s, size=(s.shape[2] * 2**i, s.shape[3] * 2**i), mode="bilinear",
                              align_corners=False)
            probs.append(torch.sigmoid(s))
        return (torch.sigmoid(self.fuse(torch.cat(probs, dim=1))), *probs)


def convtasnet():
    return torchaudio.models.ConvTasNet(num_sources=2, enc_kernel_size=16, enc_num_feats=64,
                                        msk_kernel_size=3, msk_num_feats=32,
                                        msk_num_hidden_feats=64, msk_num_layers=2,
                                        msk_num_stacks=1)


# ---- float16 conversion (onnxconverter-common's convert_float_to_float16,
# keep_io_types=True, with Resize in its default block list) -------------

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
BLOCKED = {"Resize", "Upsample"}  # kept in float32 between Casts


def to_half(tensor):
    half = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor).astype("float16"),
                                        tensor.name)
    tensor.CopyFrom(half)


def convert_to_float16(model):
    graph = model.graph
    blocked_inputs = {i for n in graph.node if n.op_type in BLOCKED for i in n.input[1:]}
    for init in graph.initializer:
        if init.data_type == FLOAT and init.name not in blocked_inputs:
            to_half(init)
    nodes = []
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] not in blocked_inputs:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == FLOAT:
                    to_half(a.t)
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == FLOAT:
                    a.i = FLOAT16
        if n.op_type in BLOCKED:
            x, y = n.input[0], n.output[0]
            nodes.append(onnx.helper.make_node("Cast", [x], [x + "_fp32"], to=FLOAT,
                                               name=n.name + "_input_cast"))
            n.input[0] = x + "_fp32"
            n.output[0] = y + "_fp32"
            nodes.append(n)
            nodes.append(onnx.helper.make_node("Cast", [y + "_fp32"], [y], to=FLOAT16,
                                               name=n.name + "_output_cast"))
            continue
        nodes.append(n)
    # keep_io_types: float32 at the model's edges, Casts inside.
    head, tail = [], []
    for i in graph.input:
        if i.type.tensor_type.elem_type == FLOAT:
            head.append(onnx.helper.make_node("Cast", [i.name], [i.name + "_fp16"], to=FLOAT16,
                                              name=i.name + "_cast"))
            for n in nodes:
                for k, name in enumerate(n.input):
                    if name == i.name:
                        n.input[k] = i.name + "_fp16"
    for o in graph.output:
        if o.type.tensor_type.elem_type == FLOAT:
            for n in nodes:  # the producer and any consumer inside the graph
                for field in (n.input, n.output):
                    for k, name in enumerate(field):
                        if name == o.name:
                            field[k] = o.name + "_fp16"
            tail.append(onnx.helper.make_node("Cast", [o.name + "_fp16"], [o.name], to=FLOAT,
                                              name=o.name + "_cast"))
    del graph.node[:]
    graph.node.extend(head + nodes + tail)
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    return model


# ---- export --------------------------------------------------------------


def logmel_kws(path):
    torch.onnx.export(LogMelKws().eval(), torch.randn(1, 1, 16000), path, opset_version=13,
                      input_names=["audio"], output_names=["logits"])


def sam_pe(folded):
    def export(path):
        torch.onnx.export(SamPositionEncoder().eval(), torch.randn(1, 3, 256, 256), path,
                          opset_version=13, input_names=["image"], output_names=["features"],
                          do_constant_folding=folded)
    return export


def side_outputs_fp16(path):
    names = ["fused"] + [f"side{i}" for i in range(4)]
    tmp = path + ".fp32"
    torch.onnx.export(SideOutputNet().eval(), torch.randn(1, 3, 64, 64), tmp, opset_version=13,
                      input_names=["image"], output_names=names,
                      dynamic_axes={"image": {2: "height", 3: "width"}})
    model = convert_to_float16(onnx.load(tmp))
    os.remove(tmp)
    onnx.save(model, path)


def convtasnet_export(path):
    torch.onnx.export(convtasnet().eval(), torch.randn(1, 1, 800), path, opset_version=13,
                      input_names=["mixture"], output_names=["sources"])


MODELS = {
    "logmel_kws": logmel_kws,
    "sam_pe_folded": sam_pe(True),
    "sam_pe_unfolded": sam_pe(False),
    "side_outputs_fp16": side_outputs_fp16,
    "convtasnet": convtasnet_export,
}


def export(name, out_dir):
    path = os.path.join(out_dir, f"{name}.onnx")
    if export_fixture.up_to_date(path, __file__):
        return
    torch.manual_seed(0)
    export_fixture.write_whole(path, MODELS[name])


if __name__ == "__main__":
    export_fixture.main(__doc__, MODELS, export)
