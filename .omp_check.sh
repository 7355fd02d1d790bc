#!/bin/bash
# idle-machine check: OMP ACTIVE vs PASSIVE, pinned to 2 cores
python -c "import torch,sys; print(torch.__version__, sys.version)" || exit 1
cat > /tmp/omp.py <<'PY'
import time, torch, os
torch.manual_seed(0)
from torch import nn
class M(nn.Module):
    def __init__(s):
        super().__init__(); s.e=nn.LSTM(8,64,batch_first=True); s.l=nn.Linear(64,16); s.d=nn.LSTM(16,64,batch_first=True); s.o=nn.Linear(64,8)
    def forward(s,x):
        _,(h,_)=s.e(x); z=s.l(h[-1]).unsqueeze(1).expand(-1,x.shape[1],-1); y,_=s.d(z); return s.o(y)
m=M().eval(); x=torch.randn(8192,64,8)
for th in (1,2):
  torch.set_num_threads(th)
  for bs in (256,512,1024):
    with torch.inference_mode():
      m(x[:bs]); best=0
      for _ in range(3):
        t=time.perf_counter()
        for s in range(0,8192,bs): m(x[s:s+bs])
        best=max(best,8192/(time.perf_counter()-t))
    print(os.environ.get("OMP_WAIT_POLICY","default"), th, bs, f"{best:,.0f}", flush=True)
a=torch.randn(1024,1024);b=torch.randn(1024,1024);torch.set_num_threads(2);a@b;t=time.perf_counter()
for _ in range(30): a@b
print("matmul2", 30*2*1024**3/(time.perf_counter()-t)/1e9)
PY
lscpu | grep "Model name"
for pol in ACTIVE PASSIVE; do OMP_WAIT_POLICY=$pol taskset -c 0,1 python /tmp/omp.py; done
