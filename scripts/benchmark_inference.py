"""Stage: inference latency and peak memory of the run's models (CSV, JSON, plots)."""
from bertflow.inference import benchmark_models
from bertflow.stage import stage

with stage(snakemake, uses_torch=True):
    out = snakemake.output
    benchmark_models(
        models=dict(snakemake.input.items()),
        out_csv=out.csv,
        out_json=out.json,
        plots={k: out[k] for k in ("latency_vs_seq_len", "memory_vs_seq_len", "memory_vs_batch_size")},
        device=snakemake.params.device,
        **snakemake.params.grid,
    )
