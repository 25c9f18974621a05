# torch.profiler over ResNet-18 (BN -> identity, as resnet_torch.py) in bf16 autocast, eager:
# per-kernel CUDA time of one inference at batch 256 and one training step at 128.
import sys, torch, torchvision
from torch.profiler import profile, ProfilerActivity
prec = sys.argv[1] if len(sys.argv) > 1 else "bf16"
torch.backends.cudnn.allow_tf32 = prec == "tf32"; torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
ac = torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16")
torch.manual_seed(0); dev = torch.device("cuda")
net = torchvision.models.resnet18(weights=None, norm_layer=lambda c: torch.nn.Identity()).to(dev)
x = torch.randn(256, 3, 224, 224, device=dev)
net.eval()
def infer():
    with torch.no_grad(), ac: net(x)
for _ in range(5): infer()
torch.cuda.synchronize()
def show(p, title, n):
    ev = [e for e in p.key_averages() if e.device_type.name == "CUDA" or getattr(e, "self_device_time_total", 0) > 0]
    ev = sorted(p.key_averages(), key=lambda e: -e.self_device_time_total)
    tot = sum(e.self_device_time_total for e in ev)
    print(f"== {title}: total kernel time {tot/1e3/n:.3f} ms per run")
    for e in ev[:28]:
        if e.self_device_time_total <= 0: continue
        print(f"{e.self_device_time_total/1e3/n:8.3f} ms {e.count//n:4d}x  {e.key[:150]}")
with profile(activities=[ProfilerActivity.CUDA]) as p:
    for _ in range(5): infer()
    torch.cuda.synchronize()
show(p, f"{prec} inference b256", 5)
net.train(); opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
xt = torch.randn(128, 3, 224, 224, device=dev); yt = torch.randint(0, 1000, (128,), device=dev)
def step():
    opt.zero_grad(set_to_none=True)
    with ac: loss = torch.nn.functional.cross_entropy(net(xt), yt)
    loss.backward(); opt.step()
for _ in range(3): step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as p:
    for _ in range(5): step()
    torch.cuda.synchronize()
show(p, f"{prec} training b128", 5)
