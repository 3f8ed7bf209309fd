"""Train a small sweep that records the probe scores, then run `scaling emergence` on it.

    python benchmarks/emergence_demo.py  # the docs/emergence.md figure (~6 min, 2 cores)
    python benchmarks/emergence_demo.py --sizes s1,s2 --tokens 1e5 --out /tmp/em

Every run goes through `scaling.experiment.train.train_run` (finished runs are skipped), on CPU in
fp32.
"""

from __future__ import annotations

import argparse

from scaling.analysis.emergence import main as emergence_main
from scaling.experiment.config import compose
from scaling.experiment.train import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default="runs", help="runs_dir (the sweep lands in <out>/emergence_demo)"
    )
    parser.add_argument("--sizes", default="s1,s2,s3,s4")
    parser.add_argument("--tokens", default="4e5,1.6e6")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--set",
        nargs="*",
        help="extra Hydra overrides for every run",
        default=[
            "model.ctx=64",
            "train.batch_size=32",
            "data.val_tokens=8192",
            "data.synthetic.probes.fraction=0.5",
            "data.synthetic.probes.icl_pairs=4",
            "data.synthetic.probes.icl_queries=4",
            "data.synthetic.probes.reasoning_symbols=4",
            "data.synthetic.probes.reasoning_steps=2",
            "data.synthetic.probes.reasoning_queries=4",
            "data.synthetic.probes.knowledge_facts=64",
        ],
    )
    args = parser.parse_args()
    for size in args.sizes.split(","):
        for tokens in args.tokens.split(","):
            r = train_run(
                compose(
                    [
                        f"runs_dir={args.out}",
                        "sweep.name=emergence_demo",
                        f"model.size={size}",
                        f"train.tokens={tokens}",
                        "train.device=cpu",
                        "train.precision=fp32",
                        f"train.threads={args.threads}",
                        *args.set,
                    ]
                )
            )
            print(
                f"{r['run_id']}: N={r['N']:,} D={r['D']:,} loss={r['loss']:.3f} "
                f"icl={r.get('icl_acc', float('nan')):.2f} "
                f"reasoning={r.get('reasoning_acc', float('nan')):.2f} "
                f"knowledge={r.get('knowledge_acc', float('nan')):.2f} "
                f"induction={r['induction_acc']:.2f} ({r['wall_s']:.0f} s)",
                flush=True,
            )
    emergence_main([f"{args.out}/emergence_demo"])


if __name__ == "__main__":
    main()
