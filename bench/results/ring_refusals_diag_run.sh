#!/bin/bash
for i in 1 2 3 4 5 6 7 8; do
  /tmp/diag/.venv/bin/collector run > /dev/shm/diag.jsonl 2> /tmp/diag_err.txt &
  C=$!
  until grep -q "start-up scan" /tmp/diag_err.txt; do sleep 0.1; done
  /tmp/spawner 60 > /tmp/s1 & /tmp/spawner 60 > /tmp/s2 & wait %2 %3
  echo "== run $i $(date +%T) spawned $(cat /tmp/s1) $(cat /tmp/s2)"
  bpftool map dump name refusals -j | python3 -c '
import json,sys,struct
d=json.load(sys.stdin)
for e in d:
    v=e["value"] if "value" in e else e["formatted"]["value"]
    if isinstance(v,dict): print(e.get("key"), v) if v.get("ktime") else None
    else:
        b=bytes(int(x,16) for x in v); f=struct.unpack("<8Q",b)
        if f[0]: print(int.from_bytes(bytes(int(x,16) for x in e["key"]),"little"), dict(zip("ktime first_ns second_ns avail ok cpu prod cons".split(),f)))
'
  kill -INT $C; wait $C; rm -f /dev/shm/diag.jsonl
  grep "^stats:" /tmp/diag_err.txt | tail -1 | cut -c1-120
done
