"""backprop model files in PyTorch: open one as a torch.nn.Sequential, save one from it.

Depends on torch and the Python standard library only (it reads and writes safetensors itself;
Debian has no safetensors package). A backprop model file (docs/formats.md) is a safetensors file
whose tensors are named as nn.Sequential(Linear, activation, Linear, activation, ...) names its
Linear modules ("0.weight", "0.bias", "2.weight", ...) and whose "__metadata__" holds the
architecture, the class names and the preprocessing.

    import backprop_torch as bt
    model = bt.load("model.safetensors")      # nn.Sequential in eval mode
    x = bt.preprocess(model, raw_features)    # (x - input_shift) * input_scale, as backprop does
    probabilities = model(x)
    bt.save(model, "copy.safetensors")        # the same bytes back

    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3), nn.Softmax(dim=1))
    bt.save(net, "iris.safetensors", class_names=["setosa", "versicolor", "virginica"])

A regression model trained on standardised targets (metadata target_shift and target_scale)
gives outputs in the targets' units: load() ends the Sequential with a ToTargets module
(a * target_scale + target_shift), after the output activation, and save() turns a trailing
ToTargets back into the two metadata vectors.

Activations map one to one: sigmoid nn.Sigmoid, tanh nn.Tanh, relu nn.ReLU, leaky-relu
nn.LeakyReLU(negative_slope), identity nn.Identity, softmax nn.Softmax(dim=1). load() puts an
activation module after every Linear (nn.Identity for identity), so Linear l sits at index 2l as
in the file. save() also takes a Linear with no activation after it (identity), skips nn.Identity,
nn.Dropout and a leading nn.Flatten, and a leading Standardize (the module with_preprocessing
adds) becomes the file's preprocessing.
"""

import json
import math
import os
import struct
import sys
import tempfile

import torch
from torch import nn

__all__ = ["load", "save", "preprocess", "with_preprocessing", "Standardize", "ToTargets",
           "read_safetensors", "write_safetensors", "metadata"]

FORMAT = "backprop-mlp"
FORMAT_VERSION = "1"

# safetensors dtypes this module reads, with their torch type and size.
_DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
}

_HIDDEN = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "identity": nn.Identity,
}
_OUTPUTS = ("softmax", "sigmoid", "identity")


class Standardize(nn.Module):
    """x' = (x - shift) * scale, per feature: backprop's preprocessing as a module."""

    def __init__(self, shift, scale):
        super().__init__()
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x):
        if x.dim() > 2:  # images: one row of features per example
            x = x.flatten(1)
        return (x - self.shift) * self.scale


class ToTargets(nn.Module):
    """y = a * scale + shift, per output: a regression model's standardised outputs in the
    targets' units, in float32 with one rounding after the product and one after the sum, as
    backprop computes it."""

    def __init__(self, shift, scale):
        super().__init__()
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, a):
        return a * self.scale + self.shift


# ---------------------------------------------------------------------------------------------
# safetensors


def read_safetensors(path):
    """(metadata: dict of str, tensors: dict name -> tensor, in file order) of a safetensors
    file."""
    with open(path, "rb") as f:
        data = f.read()
    if sys.byteorder != "little":
        raise ValueError(f"{path}: safetensors data is little-endian; this host is not")
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: the safetensors header is not UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    if not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{path}: __metadata__ values must be strings")
    body = data[8 + n:]
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1].get("data_offsets", (0, 0))))
    tensors = {}
    for name, entry in entries:
        dtype = entry.get("dtype")
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {dtype!r}; "
                             f"expected one of {', '.join(_DTYPES)}")
        torch_dtype, size = _DTYPES[dtype]
        shape = entry["shape"]
        begin, end = entry["data_offsets"]
        count = math.prod(shape)
        if not 0 <= begin <= end <= len(body) or end - begin != count * size:
            raise ValueError(f"{path}: tensor '{name}': data_offsets {[begin, end]} do not hold "
                             f"{count} {dtype} values within the {len(body)}-byte data section")
        raw = bytearray(body[begin:end])
        t = torch.frombuffer(raw, dtype=torch_dtype) if count else torch.empty(0, dtype=torch_dtype)
        tensors[name] = t.reshape(shape).clone()
    return meta, tensors


def _float32_bytes(t):
    values = t.detach().to(torch.float32).cpu().contiguous().flatten().tolist()
    return struct.pack(f"<{len(values)}f", *values)


def write_safetensors(path, metadata, tensors):
    """Writes float32 tensors (an ordered dict or list of (name, tensor)) and string metadata as
    backprop's own writer does: compact JSON, "__metadata__" first with sorted keys, then the
    tensors in the given order with contiguous offsets, the header padded with spaces to a
    multiple of 8 bytes; atomically (a temporary file renamed over path)."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    header = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    blobs, offset = [], 0
    for name, t in items:
        blob = _float32_bytes(t)
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for blob in blobs:
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------------------------
# Model files


def _activation_module(name, slope, where):
    if name == "leaky-relu":
        return nn.LeakyReLU(negative_slope=slope)
    if name == "softmax" and where == "output":
        return nn.Softmax(dim=1)
    if name in _HIDDEN and (where == "hidden" or name in _OUTPUTS):
        return _HIDDEN[name]()
    raise ValueError(f"{name!r} is not a {where} activation backprop writes")


def load(path):
    """The model file as an nn.Sequential in eval mode: Linear l at index 2l, each followed by its
    activation (the output's included: softmax, sigmoid or nn.Identity), float32. The file's
    metadata, as strings, is kept in model.backprop_metadata (preprocess() and save() use it)."""
    meta, tensors = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a backprop model file (__metadata__ format is "
                         f"{meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {meta.get('format_version')!r}; this module "
                         f"reads version {FORMAT_VERSION}")
    layers = json.loads(meta["layers"])
    slope = float(json.loads(meta.get("leaky_relu_slope", "0.01")))
    n_layers = len(layers) - 1
    expected = {f"{2 * l}.{p}" for l in range(n_layers) for p in ("weight", "bias")}
    if set(tensors) != expected:
        extra, missing = sorted(set(tensors) - expected), sorted(expected - set(tensors))
        raise ValueError(f"{path}: tensors do not match layers {layers}: "
                         f"missing {missing}, unexpected {extra}")
    modules = []
    for l in range(n_layers):
        last = l == n_layers - 1
        linear = nn.Linear(layers[l], layers[l + 1])
        w, b = tensors[f"{2 * l}.weight"], tensors[f"{2 * l}.bias"]
        if tuple(w.shape) != (layers[l + 1], layers[l]) or tuple(b.shape) != (layers[l + 1],):
            raise ValueError(f"{path}: layer {l + 1}: weight {list(w.shape)} and bias "
                             f"{list(b.shape)} do not match layers {layers}")
        with torch.no_grad():
            linear.weight.copy_(w.to(torch.float32))
            linear.bias.copy_(b.to(torch.float32))
        modules.append(linear)
        name = meta["output_activation"] if last else meta["hidden_activation"]
        try:
            modules.append(_activation_module(name, slope, "output" if last else "hidden"))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    if "target_shift" in meta or "target_scale" in meta:
        shift = json.loads(meta.get("target_shift", "[]"))
        scale = json.loads(meta.get("target_scale", "[]"))
        if len(shift) != layers[-1] or len(scale) != layers[-1]:
            raise ValueError(f"{path}: target_shift and target_scale need {layers[-1]} values "
                             f"each, got {len(shift)} and {len(scale)}")
        modules.append(ToTargets(shift, scale))
    model = nn.Sequential(*modules)
    model.eval()
    model.backprop_metadata = dict(meta)
    return model


def metadata(model):
    """The model file's metadata decoded: lists and numbers from their JSON text."""
    out = {}
    for key, value in getattr(model, "backprop_metadata", {}).items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def preprocess(model, x):
    """x (examples x features, or examples x sample shape) as the model's input: (x - input_shift)
    * input_scale when the file has preprocessing (in float32, as backprop computes it), x as
    float32 otherwise."""
    x = torch.as_tensor(x).to(torch.float32)
    if x.dim() > 2:  # images: one row of features per example
        x = x.flatten(1)
    meta = getattr(model, "backprop_metadata", {})
    shift = json.loads(meta.get("input_shift", "[]"))
    if not shift:
        return x
    scale = json.loads(meta["input_scale"])
    return (x - torch.tensor(shift, dtype=torch.float32)) * torch.tensor(scale, dtype=torch.float32)


def with_preprocessing(model):
    """nn.Sequential(Standardize(shift, scale), model): raw features in, outputs out."""
    meta = getattr(model, "backprop_metadata", {})
    shift = json.loads(meta.get("input_shift", "[]"))
    if not shift:
        return model
    return nn.Sequential(Standardize(shift, json.loads(meta["input_scale"])), model)


def _flatten(module):
    if isinstance(module, nn.Sequential):
        for child in module:
            yield from _flatten(child)
    else:
        yield module


def _activation_name(m):
    """(name, slope) of an activation module, or None for a module that is not one."""
    if isinstance(m, nn.Sigmoid):
        return "sigmoid", None
    if isinstance(m, nn.Tanh):
        return "tanh", None
    if isinstance(m, nn.ReLU):
        return "relu", None
    if isinstance(m, nn.LeakyReLU):
        return "leaky-relu", float(m.negative_slope)
    if isinstance(m, nn.Softmax):
        if m.dim not in (1, -1):
            raise ValueError(f"nn.Softmax(dim={m.dim}): backprop's softmax is over the outputs of "
                             "each example (dim=1)")
        return "softmax", None
    return None


def _same_value(a, b):
    """Whether two metadata strings mean the same (JSON text compared by value)."""
    try:
        return json.loads(a) == json.loads(b)
    except json.JSONDecodeError:
        return a == b


def _json(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def save(model, path, *, class_names=None, feature_names=None, label_columns=None, task=None,
         loss=None, input_shift=None, input_scale=None, sample_shape=None, seed=None, init=None,
         target_shift=None, target_scale=None):
    """Writes an nn.Sequential of Linear layers and supported activations as a backprop model file.

    All hidden layers share one activation (sigmoid, tanh, relu, leaky-relu with one slope in
    (0, 1), or identity); the output's is softmax, sigmoid or none (identity). Defaults: task
    classify unless the output is identity (regress); loss cross-entropy for softmax and sigmoid
    outputs, quadratic for identity; class_names "0", "1", ...; feature_names "x0", "x1", ...;
    label_columns ["label"] (classify) or "y0", "y1", ... (regress); no preprocessing, unless the
    model starts with a Standardize module or input_shift and input_scale are given (x' = (x -
    shift) * scale). Regression targets: a trailing ToTargets module, or target_shift and
    target_scale (outputs mean a * target_scale + target_shift), are stored as the file's target
    standardisation. A model returned by load() keeps its file's metadata for anything not given.
    """
    base = dict(getattr(model, "backprop_metadata", {}))
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], Standardize):
        base = base or dict(getattr(model[1], "backprop_metadata", {}))  # with_preprocessing(m)
    modules = list(_flatten(model))
    if modules and isinstance(modules[0], Standardize):
        if input_shift is None:
            input_shift = modules[0].shift.tolist()
            input_scale = modules[0].scale.tolist()
        modules = modules[1:]
    if modules and isinstance(modules[0], nn.Flatten):
        modules = modules[1:]
    if modules and isinstance(modules[-1], ToTargets):
        if target_shift is None:
            target_shift = modules[-1].shift.tolist()
            target_scale = modules[-1].scale.tolist()
        modules = modules[:-1]

    linears, acts = [], []  # acts[l]: (name, slope) after linear l; None = identity
    for i, m in enumerate(modules):
        if isinstance(m, nn.Linear):
            if linears and m.in_features != linears[-1].out_features:
                raise ValueError(f"module {i}: Linear takes {m.in_features} inputs, but the layer "
                                 f"before gives {linears[-1].out_features}")
            linears.append(m)
            acts.append(None)
            continue
        if isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        act = _activation_name(m)
        if act is None:
            raise ValueError(f"module {i} ({type(m).__name__}) is not supported: backprop models "
                             "hold Linear layers and Sigmoid, Tanh, ReLU, LeakyReLU, Identity or "
                             "(last) Softmax")
        if not linears:
            raise ValueError(f"module {i} ({type(m).__name__}) comes before any Linear layer")
        if acts[-1] is not None:
            raise ValueError(f"module {i} ({type(m).__name__}): two activations in a row")
        acts[-1] = act
    if not linears:
        raise ValueError("the model has no Linear layer")

    hidden = {a or ("identity", None) for a in acts[:-1]}
    if len(hidden) > 1:
        raise ValueError(f"hidden layers use different activations {sorted(str(h) for h in hidden)}"
                         "; a backprop model has one hidden activation")
    hidden_name, slope = hidden.pop() if hidden else ("sigmoid", None)
    if hidden_name == "softmax":
        raise ValueError("softmax is an output activation only")
    if slope is not None and not 0 < slope < 1:
        raise ValueError(f"LeakyReLU negative_slope {slope} is outside (0, 1)")
    output_name = (acts[-1] or ("identity", None))[0]
    if output_name not in _OUTPUTS:
        raise ValueError(f"the output activation is {output_name}; backprop outputs are softmax, "
                         "sigmoid or identity")

    widths = [linears[0].in_features] + [m.out_features for m in linears]
    n_in, n_out = widths[0], widths[-1]
    arch = {
        "layers": _json(widths),
        "hidden_activation": hidden_name,
        "output_activation": output_name,
        "leaky_relu_slope": _json(slope if slope is not None else 0.01),
    }

    def from_base(key, default):
        return json.loads(base[key]) if key in base else default

    task = task or base.get("task") or ("regress" if output_name == "identity" else "classify")
    if not loss:
        loss = base.get("loss") or ("quadratic" if output_name == "identity" else "cross-entropy")
    if class_names is None:
        class_names = from_base("class_names", None)
        if class_names is None or (task == "classify" and len(class_names) != n_out):
            class_names = [str(c) for c in range(n_out)] if task == "classify" else []
    if feature_names is None:
        feature_names = from_base("feature_names", None)
        if feature_names is None or len(feature_names) != n_in:
            feature_names = [f"x{j}" for j in range(n_in)]
    if label_columns is None:
        label_columns = from_base("label_columns", None)
        if label_columns is None or (task == "regress" and len(label_columns) != n_out):
            label_columns = ["label"] if task == "classify" else [f"y{j}" for j in range(n_out)]
    if sample_shape is None:
        sample_shape = from_base("sample_shape", None)
        if sample_shape is None or math.prod(sample_shape) != n_in:
            sample_shape = [n_in]
    if input_shift is None and input_scale is None:
        input_shift, input_scale = from_base("input_shift", []), from_base("input_scale", [])
    shift = [float(v) for v in torch.as_tensor(input_shift, dtype=torch.float32).flatten().tolist()]
    scale = [float(v) for v in torch.as_tensor(input_scale, dtype=torch.float32).flatten().tolist()]

    if task not in ("classify", "regress"):
        raise ValueError(f"task {task!r}: expected 'classify' or 'regress'")
    if loss not in ("cross-entropy", "quadratic"):
        raise ValueError(f"loss {loss!r}: expected 'cross-entropy' or 'quadratic'")
    if loss == "cross-entropy" and output_name == "identity":
        raise ValueError("cross-entropy needs probabilities: end the model with Softmax or Sigmoid")
    if task == "classify" and len(class_names) != n_out:
        raise ValueError(f"{len(class_names)} class_names for {n_out} outputs")
    if task == "regress" and (class_names or len(label_columns) != n_out):
        raise ValueError(f"a regression model needs no class_names and {n_out} label_columns")
    if len(feature_names) != n_in:
        raise ValueError(f"{len(feature_names)} feature_names for {n_in} inputs")
    if len(shift) != len(scale) or (shift and len(shift) != n_in):
        raise ValueError(f"input_shift and input_scale need {n_in} values each, "
                         f"got {len(shift)} and {len(scale)}")
    if not all(math.isfinite(v) for v in shift + scale):
        raise ValueError("input_shift and input_scale must be finite")
    if target_shift is None and target_scale is None:
        target_shift, target_scale = from_base("target_shift", []), from_base("target_scale", [])
    tshift = [float(v) for v in
              torch.as_tensor(target_shift or [], dtype=torch.float32).flatten().tolist()]
    tscale = [float(v) for v in
              torch.as_tensor(target_scale or [], dtype=torch.float32).flatten().tolist()]
    if tshift or tscale:
        if task != "regress" or len(tshift) != n_out or len(tscale) != n_out:
            raise ValueError(f"target_shift and target_scale belong to a regression model and "
                             f"need {n_out} values each, got {len(tshift)} and {len(tscale)}")
        if not all(math.isfinite(v) for v in tshift) or not all(v > 0 and math.isfinite(v)
                                                                 for v in tscale):
            raise ValueError("target_shift must be finite and target_scale finite and > 0")

    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "loss": loss,
        "class_names": _json(list(class_names)),
        "feature_names": _json(list(feature_names)),
        "label_columns": _json(list(label_columns)),
        "sample_shape": _json(list(sample_shape)),
        "input_shift": _json(shift),
        "input_scale": _json(scale),
        "backprop_version": base.get("backprop_version", "pytorch-" + torch.__version__),
        "seed": str(seed if seed is not None else base.get("seed", "0")),
        "init": init or base.get("init", "pytorch"),
        "data_hash": base.get("data_hash", ""),
        "train_examples": base.get("train_examples", "0"),
    }
    if tshift:
        meta["target_shift"] = _json(tshift)
        meta["target_scale"] = _json(tscale)
    # The architecture's text, kept as the base file wrote it when it means the same.
    meta.update(arch)
    for key in list(arch) + ["class_names", "feature_names", "label_columns", "sample_shape",
                             "input_shift", "input_scale", "target_shift", "target_scale"]:
        if key in base and key in meta and _same_value(base[key], meta[key]):
            meta[key] = base[key]

    tensors = []
    for l, m in enumerate(linears):
        w = m.weight.detach()
        b = m.bias.detach() if m.bias is not None else torch.zeros(m.out_features)
        for name, t in ((f"{2 * l}.weight", w), (f"{2 * l}.bias", b)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"refusing to save tensor {name}: it holds NaN or Inf")
        tensors.append((f"{2 * l}.weight", w))
        tensors.append((f"{2 * l}.bias", b))
    write_safetensors(path, meta, tensors)
