# PyTorch 2.11's default ONNX export (the dynamo exporter) of a few models, as ONNX backend-style
# cases with onnxruntime's outputs as the reference (checked against PyTorch's own).
import os, sys, traceback
import numpy as np, torch, torchvision, onnx, onnxruntime as ort
from onnx import numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

class Lstm(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.l = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    def forward(s, x, h0, c0):
        y, (h, c) = s.l(x, (h0, c0)); return y, h, c
class Gru(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.l = torch.nn.GRU(5, 6, batch_first=True)
    def forward(s, x):
        y, h = s.l(x); return y, h
class Reduce(torch.nn.Module):
    def forward(s, x):
        return x.amax(dim=1), x.mean(dim=(1, 2), keepdim=True), torch.nn.functional.pad(x, (1, 2)), *torch.split(x, 3, dim=2)

class Mixed(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.fc1 = torch.nn.Linear(8, 16); s.act = torch.nn.GELU(); s.fc2 = torch.nn.Linear(16, 8)
        s.pool = torch.nn.AvgPool2d(3, stride=2, padding=1)
    def forward(s, x, img, grid, idx):
        h = s.fc2(s.act(s.fc1(x)))
        v, i = torch.topk(h, 3, dim=1)
        sc = h.scatter(1, idx, torch.ones_like(idx, dtype=h.dtype))
        g = torch.nn.functional.grid_sample(s.pool(img), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return v, i, sc, g

cases = [
    ("mixed_gelu_topk_scatter_gridsample", Mixed(), (torch.randn(4, 8), torch.randn(1, 2, 9, 9), torch.rand(1, 3, 3, 2) * 2 - 1, torch.tensor([[0, 3], [1, 1], [7, 2], [5, 6]]))),

    ("resnet18", torchvision.models.resnet18(), (torch.randn(1, 3, 64, 64),)),
    ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small(), (torch.randn(1, 3, 64, 64),)),
    ("transformer_encoder_layer", torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0), (torch.randn(2, 10, 32),)),
    ("lstm_2layer_bidirectional", Lstm(), (torch.randn(6, 3, 5), torch.randn(4, 3, 7), torch.randn(4, 3, 7))),
    ("gru_batch_first", Gru(), (torch.randn(3, 4, 5),)),
    ("reductions_pad_split", Reduce(), (torch.randn(2, 3, 7),)),
]
for name, mod, args in cases:
    mod.eval()
    d = os.path.join(out, name); ds = os.path.join(d, "test_data_set_0"); os.makedirs(ds, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    try:
        prog = torch.onnx.export(mod, args, dynamo=True, opset_version=int(os.environ.get("OPSET", "18")))
        prog.save(path, external_data=False)
    except Exception as e:
        print(name, "export failed:", type(e).__name__, str(e)[:300]); continue
    m = onnx.load(path)
    print(name, "opset", [(o.domain, o.version) for o in m.opset_import], "ops:", sorted({n.op_type for n in m.graph.node}))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = [a.numpy() for a in args]
    res = sess.run(None, dict(zip(names, feeds)))
    with torch.no_grad():
        ref = mod(*args)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    print(name, "onnxruntime vs torch, max |diff|:", max(float(np.abs(r - t.numpy()).max()) for r, t in zip(res, ref)))
    for i, (n, a) in enumerate(zip(names, feeds)):
        open(os.path.join(ds, f"input_{i}.pb"), "wb").write(numpy_helper.from_array(a, n).SerializeToString())
    for i, (o, a) in enumerate(zip(sess.get_outputs(), res)):
        open(os.path.join(ds, f"output_{i}.pb"), "wb").write(numpy_helper.from_array(a, o.name).SerializeToString())
