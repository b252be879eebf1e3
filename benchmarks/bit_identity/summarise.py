"""Summary of run.sh's runs (the models named after OUT): per-epoch loss terms, valid/test results, sha256 of each best checkpoint's state_dict."""
import glob, hashlib, os, re, sys
import torch
root, names = sys.argv[1], sys.argv[2:]  # the OUT folder of run.sh, then its models
for name in names:
    d = os.path.join(root, name)
    logs = glob.glob(os.path.join(d, "log", "**", "*.log"), recursive=True)
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", l) for l in open(logs[0]).read().splitlines()]
    print(f"== {name}")
    for i, line in enumerate(lines):
        m = re.search(r"(epoch \d+ training \[.*?\]|valid result:.*|test result.*|best valid.*)", line)
        if m:
            s = re.sub(r"time: [0-9.]+s, ", "", m.group(1)).rstrip()
            nxt = lines[i + 1].strip() if s.endswith(":") and i + 1 < len(lines) else ""
            print("  " + s + " " + nxt)
    ck = [c for c in glob.glob(os.path.join(d, "saved", "*.pth")) if not c.endswith(".last.pth")][0]
    sd = torch.load(ck, weights_only=True, map_location="cpu")["state_dict"]
    h = hashlib.sha256()
    for k in sorted(sd):
        v = sd[k]
        if not isinstance(v, torch.Tensor):
            h.update(k.encode()); h.update(repr(v).encode()); continue
        t = v.detach().cpu().contiguous()
        h.update(k.encode()); h.update(str(t.dtype).encode()); h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    print(f"  state_dict sha256 ({len(sd)} entries): {h.hexdigest()}")
