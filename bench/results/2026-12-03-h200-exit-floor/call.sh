source tmp-dev/common.sh
el start
g++ -O2 -o /tmp/floor tmp-dev/exitexp/floor.cpp -I/usr/local/cuda/include -L/usr/local/cuda/lib64 -lcudart -Wl,-rpath,/usr/local/cuda/lib64 2>&1 | tail -3
/tmp/floor normal >/dev/null 2>&1
for r in 1 2 3 4 5; do for m in normal quick reset "normal pinned" "quick pinned"; do
  s=$(date +%s%N); /tmp/floor $m 2> /tmp/e.txt; e=$(date +%s%N); echo "$r $m: wall $(( (e-s)/1000000 )) ms, $(tr '\n' ' ' < /tmp/e.txt)" | tee -a $R/exit.txt
done; done
strace -f -T -e trace=close,ioctl,munmap,exit_group -o $R/strace_normal.txt /tmp/floor normal 2>/dev/null
tail -30 $R/strace_normal.txt > $R/strace_tail.txt
el done
finish
