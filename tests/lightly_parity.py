#!/usr/bin/env python3
"""Python side of tests/test_peer_parity.cpp: lightly's losses and their gradients on the C++ test's inputs.

  python tests/lightly_parity.py IN OUT

IN   the inputs, a dict of tensors: a .pt file written by contrastive::save_state_dict (torch::pickle_save of a
     c10::Dict<std::string, Tensor>; torch >= 2.6 needs weights_only=False for it, because LibTorch tags the dict
     with torch.jit._pickle.restore_type_tag, which the weights_only allow-list lacks) or any torch.save of a
     dict; or a .json file {name: {"shape": [...], "data": [row-major floats]}} (the tests/fixtures format).
OUT  the results: .json (the same tensor encoding, floats printed with repr, so float64 values round-trip
     exactly; what the C++ test reads) or anything else for a torch.save of a plain dict.

Cases (every one present in IN is computed, in float64 and in float32; names in OUT: CASE.DTYPE.loss and
CASE.DTYPE.grad.INPUT):
  ntxent   z1, z2 [B,D] (raw), temperature: lightly.loss.NTXentLoss(temperature)(z1, z2) (no memory bank)
  negcos   p, z [N,D]: lightly.loss.NegativeCosineSimilarity()(p, z.detach())
  simsiam  p1, p2, z1, z2: 0.5 * (crit(z1.detach(), p2) + crit(z2.detach(), p1)), lightly's SimSiam example
  byol     p1, p2, z1, z2: 0.5 * (crit(p1, z2.detach()) + crit(p2, z1.detach())), lightly's BYOL example
  moco     q, k [N,D] (raw), queue [D,K] (contrastive's layout, unit columns), temperature:
           lightly.loss.NTXentLoss(temperature, memory_bank_size=(K, D)) with its bank set to queue.T, on
           (q, k.detach()); also CASE.DTYPE.bank_after, lightly's bank after the call ([K,D]: k normalised at 0..N)
  vicreg   z1, z2 [B,D]: lightly.loss.VICRegLoss()(z1, z2) (defaults 25/25/1, eps 1e-4)
  barlow   z1, z2 [B,D], lambda: lightly.loss.BarlowTwinsLoss(lambda_param=lambda)(z1, z2)
  dino     teacher0.., student0.. [B,K] (the teacher crops first among the student crops), center [1,K],
           warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, student_temp, center_momentum, epoch:
           lightly.loss.DINOLoss(K, ...) with its center set to `center`, called with epoch=epoch (its linear
           warm-up); also CASE.DTYPE.center_after [1,K], its centre after the call
  nnclr    z1, z2, p1, p2 [B,D], support [M,D] (raw rows), temperature: lightly's NNCLR example
           (NNMemoryBankModule docstring): nn_i = NNMemoryBankModule((M, D)) with its bank set to `support`, called
           on z_i.detach() with update=False; loss 0.5 * (NTXentLoss(T)(nn1, p2) + NTXentLoss(T)(nn2, p1));
           also CASE.DTYPE.nn1 and CASE.DTYPE.nn2, the neighbours as lightly returns them (raw bank rows)
Gradients are w.r.t. the raw inputs that carry gradient in lightly's use (not k, z: detached there).
Exit status 3 with a one-line message when lightly cannot be imported.
"""
import json
import re
import sys

try:
    import torch
except ImportError as e:
    print(f"lightly_parity.py: cannot import torch ({e}); run bench/peers/setup_peers.sh", file=sys.stderr)
    sys.exit(3)
try:
    import lightly
    from lightly.loss import BarlowTwinsLoss, DINOLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss
    from lightly.models.modules import NNMemoryBankModule
except ImportError as e:
    print(f"lightly_parity.py: cannot import lightly ({e}) with {sys.executable}; run bench/peers/setup_peers.sh",
          file=sys.stderr)
    sys.exit(3)


def load_inputs(path):
    if path.endswith(".json"):
        with open(path) as f:
            raw = json.load(f)
        return {k: torch.tensor(v["data"], dtype=torch.float64).reshape(v["shape"]) for k, v in raw.items()}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 -- the type tag of a LibTorch dict; our own file, so load it fully
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict):
        raise SystemExit(f"lightly_parity.py: {path} holds a {type(obj).__name__}, not a dict of tensors")
    return {k: v.detach().to(torch.float64) for k, v in obj.items()}


def leaf(t, dtype, grad=True):
    return t.detach().to(dtype).clone().requires_grad_(grad)


def run_case(name, inp, dtype):
    """(loss, {input: grad}, extras) of lightly's loss on the case's inputs in `dtype`."""
    g = lambda key: inp[f"{name}.{key}"]  # noqa: E731
    extras = {}
    if name == "ntxent":
        z1, z2 = leaf(g("z1"), dtype), leaf(g("z2"), dtype)
        loss = NTXentLoss(temperature=float(g("temperature")))(z1, z2)
        wrt = {"z1": z1, "z2": z2}
    elif name == "negcos":
        p, z = leaf(g("p"), dtype), leaf(g("z"), dtype, grad=False)
        loss = NegativeCosineSimilarity()(p, z.detach())
        wrt = {"p": p}
    elif name in ("simsiam", "byol"):
        p1, p2 = leaf(g("p1"), dtype), leaf(g("p2"), dtype)
        z1, z2 = leaf(g("z1"), dtype, False), leaf(g("z2"), dtype, False)
        crit = NegativeCosineSimilarity()
        if name == "simsiam":
            loss = 0.5 * (crit(z1.detach(), p2) + crit(z2.detach(), p1))
        else:
            loss = 0.5 * (crit(p1, z2.detach()) + crit(p2, z1.detach()))
        wrt = {"p1": p1, "p2": p2}
    elif name == "moco":
        q, k = leaf(g("q"), dtype), leaf(g("k"), dtype, False)
        queue = g("queue").to(dtype)  # [D, K]
        d, kk = queue.shape
        crit = NTXentLoss(temperature=float(g("temperature")), memory_bank_size=(kk, d))
        crit = crit.to(dtype)
        crit.memory_bank.bank.copy_(queue.t())  # lightly keeps [K, D] and hands out its transpose
        loss = crit(q, k.detach())
        wrt = {"q": q}
        extras["bank_after"] = crit.memory_bank.bank.detach().clone()
    elif name == "vicreg":
        z1, z2 = leaf(g("z1"), dtype), leaf(g("z2"), dtype)
        loss = VICRegLoss()(z1, z2)
        wrt = {"z1": z1, "z2": z2}
    elif name == "barlow":
        z1, z2 = leaf(g("z1"), dtype), leaf(g("z2"), dtype)
        loss = BarlowTwinsLoss(lambda_param=float(g("lambda")))(z1, z2)
        wrt = {"z1": z1, "z2": z2}
    elif name == "dino":
        def crops(prefix):  # dino.teacher0, dino.teacher1, ... in index order (not dino.teacher_temp)
            n = sum(1 for key in inp if re.fullmatch(rf"dino\.{prefix}\d+", key))
            return [leaf(g(f"{prefix}{i}"), dtype, prefix == "student") for i in range(n)]

        teacher, student = crops("teacher"), crops("student")
        k = teacher[0].shape[1]
        crit = DINOLoss(output_dim=k, warmup_teacher_temp=float(g("warmup_teacher_temp")),
                        teacher_temp=float(g("teacher_temp")),
                        warmup_teacher_temp_epochs=int(g("warmup_teacher_temp_epochs")),
                        student_temp=float(g("student_temp")), center_momentum=float(g("center_momentum")))
        crit = crit.to(dtype)
        crit.center.copy_(g("center").to(dtype).reshape(1, 1, k))  # lightly keeps the centre as [1, 1, K]
        loss = crit([t.detach() for t in teacher], student, epoch=int(g("epoch")))
        wrt = {f"student{i}": s for i, s in enumerate(student)}
        extras["center_after"] = crit.center.detach().reshape(1, k).clone()
    elif name == "nnclr":
        z1, z2 = leaf(g("z1"), dtype, False), leaf(g("z2"), dtype, False)
        p1, p2 = leaf(g("p1"), dtype), leaf(g("p2"), dtype)
        support = g("support").to(dtype)
        nn_bank = NNMemoryBankModule(size=tuple(support.shape)).to(dtype)
        nn_bank.bank.copy_(support)
        nn1 = nn_bank(z1.detach(), update=False)
        nn2 = nn_bank(z2.detach(), update=False)
        crit = NTXentLoss(temperature=float(g("temperature")))
        loss = 0.5 * (crit(nn1, p2) + crit(nn2, p1))
        wrt = {"p1": p1, "p2": p2}
        extras["nn1"] = nn1.detach().clone()
        extras["nn2"] = nn2.detach().clone()
    else:
        raise SystemExit(f"lightly_parity.py: unknown case '{name}'")
    loss.backward()
    grads = {k: v.grad.detach().clone() for k, v in wrt.items()}
    return loss.detach(), grads, extras


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: lightly_parity.py IN OUT")
    inp = load_inputs(sys.argv[1])
    cases = sorted({k.split(".", 1)[0] for k in inp})
    out = {}
    for name in cases:
        for dname, dtype in (("f64", torch.float64), ("f32", torch.float32)):
            loss, grads, extras = run_case(name, inp, dtype)
            out[f"{name}.{dname}.loss"] = loss
            for k, v in grads.items():
                out[f"{name}.{dname}.grad.{k}"] = v
            for k, v in extras.items():
                out[f"{name}.{dname}.{k}"] = v
    dst = sys.argv[2]
    if dst.endswith(".json"):
        enc = {k: {"shape": list(v.shape), "data": [float(x) for x in v.double().reshape(-1).tolist()]}
               for k, v in out.items()}
        enc["lightly_version"] = lightly.__version__
        enc["torch_version"] = torch.__version__
        with open(dst, "w") as f:
            json.dump(enc, f)
    else:
        torch.save({k: v.double().contiguous() for k, v in out.items()}, dst)
    print(f"lightly {lightly.__version__}, torch {torch.__version__}: {len(cases)} cases ({', '.join(cases)}), "
          f"{len(out)} tensors -> {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
