"""How many timed passes the inference benchmark needs for monotone latency curves.

Builds randomly initialised BERTs of a preset (MLM, sequence-classification and QA heads: the
models of a default run), then measures the seq_len sweep (batch `--batch`) with
`bertflow.inference.run_model`, each trial in a fresh process, alternating the repeat counts
(A B A B ...). Prints, per repeat count, how many trials gave a latency median that rises with
the sequence length for every model, and the median relative p10-p90 width.

    python -m benchmarks.latency_monotonicity --preset tiny --repeats 5 20 --trials 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bertflow.inference import grid, run_model
from bertflow.presets import architecture

HEADS = ("BertForMaskedLM", "BertForSequenceClassification", "BertForQuestionAnswering")


def make_models(root: Path, preset: str, vocab_size: int) -> list[str]:
    import torch
    import transformers

    paths = []
    for head in HEADS:
        torch.manual_seed(0)
        config = transformers.BertConfig(vocab_size=vocab_size, **architecture(preset))
        path = root / head
        getattr(transformers, head)(config).save_pretrained(path)
        paths.append(str(path))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab-size", type=int, default=1000)
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args(argv)
    points = grid(args.seq_lens, [], args.batch, args.seq_lens[-1])
    monotone = {r: 0 for r in args.repeats}
    widths = {r: [] for r in args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(Path(tmp), args.preset, args.vocab_size)
        for trial in range(args.trials):
            for repeats in args.repeats:  # interleaved: A B A B
                all_rising = True
                for model in models:
                    rows, _ = run_model(model, points, args.warmup, repeats, "cpu")
                    rows.sort(key=lambda r: r["seq_len"])
                    medians = [r["latency_ms_median"] for r in rows]
                    all_rising &= all(a < b for a, b in zip(medians, medians[1:]))
                    widths[repeats] += [(r["latency_ms_p90"] - r["latency_ms_p10"]) / r["latency_ms_median"]
                                        for r in rows]
                    print(f"trial {trial} repeats {repeats:3d} {Path(model).name:30s} "
                          + " ".join(f"{m:7.2f}" for m in medians) + " ms", flush=True)
                monotone[repeats] += all_rising
    for repeats in args.repeats:
        print(f"repeats {repeats}: monotone in {monotone[repeats]}/{args.trials} trials (all {len(models)} models); "
              f"p10-p90 width / median: median {statistics.median(widths[repeats]):.2f}, "
              f"max {max(widths[repeats]):.2f}")


if __name__ == "__main__":
    main()
