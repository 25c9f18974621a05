# Call P: where bf16 ResNet-18 spends its time, shoal beside cuDNN (torch.profiler), one card.
source tmp-dev/common.sh
el start
TARGETS="resnet_bench" timeout 220 bash -c "$(declare -f build_new); R=$R; sys=$sys; build_new"; el "build rc=$?"
timeout 60 python3 bench/resnet_torch.py --onnx build-dev/resnet18.onnx --out $R/export.json --export-only > $R/export.log 2>&1; el "export rc=$?"
export SHOAL_PROFILE_LAUNCHES=80
for p in bf16 tf32; do
  timeout 150 build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision $p --runs 10 --steps 5 --batches 256 --train-batch 128 --profile --json $R/shoal_${p}p.json > $R/shoal_${p}p.log 2>&1; el "shoal $p profile rc=$?"
  timeout 150 python3 tmp-dev/torch_prof.py $p > $R/torch_${p}p.log 2>&1; el "torch $p profile rc=$?"
done
timeout 150 ncu --section SpeedOfLight --section LaunchStats --section Occupancy --kernel-name regex:_tc --launch-skip 0 --launch-count 14 \
  build-dev/resnet_bench --onnx build-dev/resnet18.onnx --precision bf16 --batches 256 --runs 1 --train-batch 0 > $R/ncu_bf16.txt 2>&1; el "ncu rc=$?"
finish
