source tmp-dev/common.sh
el start
( TARGETS="shoal_cli onnx_train_parity" build_new; echo "build rc=$?" > /tmp/build.rc ) &
C=/tmp/otp/cases; mkdir -p $C
PYTHONUNBUFFERED=1 timeout 300 python3 bench/onnx_train_torch.py make $C ${MODELS_ARG:-} > $R/torch.log 2>&1; el "make rc=$?"
grep -v "^ " $R/torch.log | grep -v "Traceback\|UserWarning" | cut -c1-300 | head -40
wait; cat /tmp/build.rc; el built
runall(){ dev=$1; for d in $C/*/; do
  [ -f "$d/spec.json" ] || continue
  n=$(basename $d)
  timeout 250 build-dev/onnx_train_parity --case "$d" --device $dev --json "$d/shoal_$dev.json" > "$d/shoal_$dev.log" 2>&1; rc=$?
  el "$n $dev rc=$rc"; tail -2 "$d/shoal_$dev.log" | cut -c1-500
done; }
runall cpu > $R/run_cpu.txt 2>&1
runall cuda
cat $R/run_cpu.txt
python3 bench/onnx_train_torch.py compare $C > $R/compare.txt 2>&1; el "compare rc=$?"; cat $R/compare.txt
cp $C/onnx_train_parity.* $R/ 2>/dev/null
for d in $C/*/; do n=$(basename $d); mkdir -p $R/cases/$n; cp $d/*.json $d/*.log $d/*.txt $R/cases/$n/ 2>/dev/null; done

mkdir -p /tmp/m && for n in vit_tiny bert_tiny; do cp -r $C/$n /tmp/m/; rm -f /tmp/m/$n/shoal_*; done
( cd /tmp/m && tar czf /tmp/m.tgz . ) && split -b 15M /tmp/m.tgz $OUT/models.tgz.
finish
