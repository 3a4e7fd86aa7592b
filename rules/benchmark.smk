BENCHMARK = config["benchmark"]


rule benchmark_inference:
    """Latency and peak memory of every model of the run over sequence lengths and batch sizes."""
    input:
        unpack(benchmarked_models),
    output:
        csv=inference_benchmark_csv(),
        json=results("benchmark", "inference.json"),
        latency_vs_seq_len=report(
            results("benchmark", "latency_vs_seq_len.png"),
            caption="../docs/captions/inference.rst",
            category="Inference benchmark",
        ),
        memory_vs_seq_len=report(
            results("benchmark", "memory_vs_seq_len.png"),
            caption="../docs/captions/inference.rst",
            category="Inference benchmark",
        ),
        memory_vs_batch_size=report(
            results("benchmark", "memory_vs_batch_size.png"),
            caption="../docs/captions/inference.rst",
            category="Inference benchmark",
        ),
    log:
        logs("benchmark_inference"),
    benchmark:
        bench("benchmark_inference")
    conda:
        ENV
    resources:
        gpu=gpus(1),
    params:
        grid=dict(sorted((k, v) for k, v in BENCHMARK.items() if k not in ("enabled", "include_finetuned"))),
        device=config["device"],
    script:
        "../scripts/benchmark_inference.py"


if BENCHMARK["enabled"]:
    FINAL_TARGETS.extend(rules.benchmark_inference.output)
