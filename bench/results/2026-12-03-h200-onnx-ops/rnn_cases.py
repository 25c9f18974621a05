# Writes ONNX backend-style test cases (model.onnx + test_data_set_0) of PyTorch's recurrent
# layers and a QDQ pair, with onnxruntime's outputs as the reference (checked against torch's).
import os, sys
import numpy as np, torch, onnx, onnxruntime as ort
from onnx import helper, numpy_helper, TensorProto

out = sys.argv[1]
torch.manual_seed(0)

def save(name, model_path, feeds):
    d = os.path.join(out, name); ds = os.path.join(d, "test_data_set_0"); os.makedirs(ds, exist_ok=True)
    if model_path != os.path.join(d, "model.onnx"):
        os.replace(model_path, os.path.join(d, "model.onnx"))
    m = onnx.load(os.path.join(d, "model.onnx"))
    print(name, "ops:", sorted({n.op_type for n in m.graph.node}), "opset", [o.version for o in m.opset_import])
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    res = sess.run(None, dict(zip(names, feeds)))
    for i, (n, a) in enumerate(zip(names, feeds)):
        open(os.path.join(ds, f"input_{i}.pb"), "wb").write(numpy_helper.from_array(a, n).SerializeToString())
    for i, (o, a) in enumerate(zip(sess.get_outputs(), res)):
        open(os.path.join(ds, f"output_{i}.pb"), "wb").write(numpy_helper.from_array(a, o.name).SerializeToString())
    return res

def export(mod, args, names_in, names_out, path):
    try:
        torch.onnx.export(mod, args, path, input_names=names_in, output_names=names_out, opset_version=17, dynamo=False)
    except Exception as e:
        print("dynamo=False failed:", type(e).__name__, str(e)[:200]); 
        torch.onnx.export(mod, args, path, input_names=names_in, output_names=names_out, opset_version=18)

class Lstm(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.l = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    def forward(s, x, h0, c0):
        y, (h, c) = s.l(x, (h0, c0)); return y, h, c
class Gru(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.l = torch.nn.GRU(5, 6, batch_first=True, bidirectional=True)
    def forward(s, x):
        y, h = s.l(x); return y, h
class Rnn(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.l = torch.nn.RNN(5, 4, nonlinearity="relu")
    def forward(s, x):
        y, h = s.l(x); return y, h

os.makedirs(out, exist_ok=True)
cases = [("torch_lstm_2layer_bidirectional", Lstm(), (torch.randn(6, 3, 5), torch.randn(4, 3, 7), torch.randn(4, 3, 7)), ["x", "h0", "c0"], ["y", "h", "c"]),
         ("torch_gru_batch_first_bidirectional", Gru(), (torch.randn(4, 5, 5),), ["x"], ["y", "h"]),
         ("torch_rnn_relu", Rnn(), (torch.randn(4, 2, 5),), ["x"], ["y", "h"])]
for name, mod, args, ins, outs in cases:
    mod.eval()
    path = os.path.join(out, name + ".onnx")
    export(mod, args, ins, outs, path)
    res = save(name, path, [a.numpy() for a in args])
    with torch.no_grad():
        ref = mod(*args)
    print(name, "onnxruntime vs torch, max |diff|:", max(float(np.abs(r - t.numpy()).max()) for r, t in zip(res, ref)))

# QDQ: per-axis int8 quantize then dequantize, and a uint8 per-tensor pair.
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])
q = helper.make_tensor_value_info("q", TensorProto.INT8, [2, 3, 4])
inits = [numpy_helper.from_array(np.array([0.02, 0.05, 0.1], np.float32), "s"),
         numpy_helper.from_array(np.array([3, -7, 0], np.int8), "z")]
nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)]
g = helper.make_graph(nodes, "qdq", [x], [q, y], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]); m.ir_version = 8
d = os.path.join(out, "qdq_int8_per_axis"); os.makedirs(d, exist_ok=True); onnx.save(m, os.path.join(d, "model.onnx"))
xv = (np.random.RandomState(1).randn(2, 3, 4) * 4).astype(np.float32)
xv[0, 0, 0] = 0.03  # a tie at scale 0.02: 1.5 -> 2
save("qdq_int8_per_axis", os.path.join(d, "model.onnx"), [xv])
