"""The all-node InfoNCE term of SGLBackbone / LightGCL at yelp's sizes, forward + backward, timed alternately in
one process: plain autograd (``cross_entropy`` over the anchors x N logit matrix, the previous implementation),
``contrast.all_node_info_nce`` (row blocks, gradient in the forward pass), and the floor of any exact
implementation: the three ``anchors x N x d`` matrix products alone (logits, and one product back per input),
in the same row blocks.

    python benchmarks/info_nce.py [--anchors=3000] [--candidates=11091] [--dim=32] [--threads=1] [--repeats=5]

Defaults: the distinct users of a 4096-interaction yelp batch (~3k) against yelp's 11,091 users, d 32.
Random unit rows (the timing does not depend on the values).
"""
import argparse

from common import environment_header, round_robin


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anchors", type=int, default=3000)
    parser.add_argument("--candidates", type=int, default=11091)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch
    import torch.nn.functional as F

    from recbole_darec.model.contrast import all_node_info_nce, block_rows

    torch.set_num_threads(args.threads)
    print(environment_header())
    torch.manual_seed(0)
    n, d, dev = args.candidates, args.dim, args.device
    anchor = torch.randn(n, d, device=dev, requires_grad=True)
    candidates = torch.randn(n, d, device=dev, requires_grad=True)
    index = torch.randperm(n, device=dev)[:args.anchors]

    def plain():
        a = F.normalize(anchor[index], dim=1) / 0.1
        loss = F.cross_entropy(a @ F.normalize(candidates, dim=1).t(), index)
        loss.backward()

    def blocked():
        all_node_info_nce(anchor, candidates, index, 0.1).backward()

    a_rows, c_rows = torch.randn(args.anchors, d, device=dev), torch.randn(n, d, device=dev)

    step = block_rows(n, dev)

    def products_only():
        grad_c = torch.zeros_like(c_rows)
        for start in range(0, args.anchors, step):
            logits = a_rows[start:start + step] @ c_rows.t()
            logits @ c_rows
            grad_c.addmm_(logits.t(), a_rows[start:start + step])

    results = round_robin({"plain autograd (cross_entropy)": plain, "all_node_info_nce (blocked)": blocked,
                           "3 matrix products only (floor)": products_only}, args.repeats, dev)
    base = min(results["plain autograd (cross_entropy)"])
    print(f"{args.anchors} anchors x {n} candidates, d {d}, {dev}, best of {args.repeats}")
    print(f"{'variant':<34} {'ms':>8} {'x plain':>8}")
    for label in results:
        best = min(results[label])
        print(f"{label:<34} {1000 * best:>8.1f} {best / base:>8.2f}")


if __name__ == "__main__":
    main()
