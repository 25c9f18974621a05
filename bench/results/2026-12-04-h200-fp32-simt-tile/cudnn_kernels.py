# Which kernels cuDNN runs for torchvision ResNet-18 in fp32 (TF32 off) at batch 256, inference
# and a training step at 128: names and device time, from torch.profiler (eager, as
# bench/resnet_torch.py times it).
import sys, torch, torchvision
from torch.profiler import profile, ProfilerActivity
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
m = torchvision.models.resnet18().cuda()
for what, batch in (("inference", 256), ("train", 128)):
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    y = torch.randint(0, 1000, (batch,), device="cuda")
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    def step():
        if what == "inference":
            with torch.no_grad():
                m.eval(); m(x)
        else:
            m.train(); opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
    for _ in range(5): step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3): step()
        torch.cuda.synchronize()
    print(f"== {what} batch {batch} (3 steps)")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=110))
