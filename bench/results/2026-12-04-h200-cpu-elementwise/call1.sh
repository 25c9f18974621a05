set -uo pipefail
T0=$(date +%s); el(){ echo "[$(( $(date +%s)-T0 )) s] $*"; }
C=/tmp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 timeout 400 python3 bench/onnx_train_torch.py make $C --steps 6 --models efficientnet_b0,convnext_atto,mobilenet_v3_small,resnet18 > $OUT/torch2.log 2>&1; el "make rc=$?"
cat $C/*/torch_times.json
du -sh $C/*
cd /tmp && tar cf - --exclude=resnet18/model.onnx cases | gzip -1 > /tmp/c.tgz; ls -la /tmp/c.tgz
split -b 15M /tmp/c.tgz $OUT/c.tgz.part-
ls -la $OUT
