"""Model card (README.md) of the pretrained model, built with huggingface_hub's ModelCard.

The YAML header (language, license, datasets, tags, library, pipeline and a `model-index` with
perplexity and, when fine-tuning ran, each task's official metrics) is what the Hub indexes; the body
holds the architecture, the training details, the per-epoch perplexity and the intended use.
Every number is read from a stage output; nothing here is typed in by hand.
"""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .errors import DataError
from .io import read_json, write_text
from .markdown import size, table
from .task_keys import task_keys
from .tokenizer import vocabulary_shortfall

# The Hub's model-index names of the fine-tuning tasks: SQuAD is question answering, every other
# task (GLUE, custom classification or regression) text classification, as the Hub files them.
TASK_NAMES = {"question-answering": "Extractive question answering (fine-tuned)",
              "text-classification": "Text classification (fine-tuned)"}


def task_metadata(task: str, summary: dict) -> dict:
    """Task type, Hub dataset (name, config) and official metrics of one task's summary.json."""
    keys = task_keys({"task": task, **summary}, f"summary.json of {task}")
    label, metrics = keys["task_label"], keys["task_metrics"]
    if task == "squad":
        task_type, hub = "question-answering", ("squad_v2" if "2.0" in label else "squad", None)
    else:
        task_type, hub = "text-classification", ("glue", task) if keys["glue"] else (None, None)
    return {"task_type": task_type, "task_name": TASK_NAMES[task_type], "hub": hub, "pretty": label,
            "metrics": list(metrics)}


def read_perplexity(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "perplexity" not in rows[0]:
        raise DataError(f"{path}: expected a CSV with an epoch,...,perplexity header and one row per epoch")
    return rows


def dataset_label(source: str, hub: dict | None, generated_label: str) -> tuple[str, str, str | None]:
    """(dataset_type, dataset_name, dataset_config) for the model-index, honest about the source:
    the Hub id of a Hub download or of local files declared as its copy (local.dataset)."""
    if source in ("hub", "local") and hub and hub.get("name"):
        return hub["name"], hub["name"], hub.get("config")
    if source == "local":
        return "local", "local files", None
    return "generated", generated_label, None


def eval_results(perplexity: float, corpus: dict, finetune: dict[str, dict], model_name: str) -> list[EvalResult]:
    """model-index entries: perplexity on the held-out corpus, then each fine-tuning metric."""
    ds_type, ds_name, ds_config = dataset_label(corpus["source"], corpus.get("hub"), "generated demo corpus")
    results = [EvalResult(task_type="fill-mask", task_name="Masked language modelling", dataset_type=ds_type,
                          dataset_name=ds_name, dataset_config=ds_config, dataset_split="validation",
                          metric_type="perplexity", metric_name="Perplexity", metric_value=round(perplexity, 4))]
    for task, summary in finetune.items():
        meta = task_metadata(task, summary)
        source = summary.get("source", {"source": "generated"})
        hub = source.get("hub") or (
            {"name": meta["hub"][0], "config": meta["hub"][1]} if source["source"] == "hub" and meta["hub"][0] else None)
        ds_type, ds_name, ds_config = dataset_label(source["source"], hub, f"generated {meta['pretty']}-style data")
        for metric in meta["metrics"]:
            results.append(EvalResult(
                task_type=meta["task_type"], task_name=meta["task_name"], dataset_type=ds_type,
                dataset_name=f"{meta['pretty']} ({ds_name})", dataset_config=ds_config, dataset_split="validation",
                metric_type=metric, metric_name=f"{metric} (%)", metric_value=round(summary["mean"][metric], 2),
            ))
    return results


def hub_datasets(sources: list[dict]) -> list[str]:
    """Hub ids of the data the model saw (Hub downloads, local files declared as a Hub dataset)."""
    names = [s["hub"]["name"] for s in sources if s.get("source") in ("hub", "local") and s.get("hub", {}).get("name")]
    return list(dict.fromkeys(names))


def card_data(settings: dict, *, model_name: str, results: list[EvalResult], datasets: list[str]) -> ModelCardData:
    return ModelCardData(
        language=settings["language"],
        license=settings["license"],
        datasets=settings["datasets"] or datasets or None,
        tags=settings["tags"],
        library_name="transformers",
        pipeline_tag="fill-mask",
        model_name=model_name,
        eval_results=results,
    )


def architecture_section(params: dict) -> list[str]:
    p, mem = params["parameters"], params["memory_bytes"]
    return ["## Architecture", ""] + table(
        ["layers", "d_model", "d_ff", "heads", "head dim", "vocab", "max positions", "parameters",
         "memory fp32", "memory fp16/bf16"],
        [[params["layers"], params["d_model"], params["d_ff"], params["heads"], params["head_dim"],
          f"{params['vocab_size']:,}", params["max_positions"], f"{p['total']:,}",
          size(mem["fp32"]), size(mem["fp16"])]],
    ) + ["", f"Word embeddings: {params['word_embeddings']['params']:,} parameters "
             f"({100 * params['word_embeddings']['params'] / p['total']:.1f}% of the model)"
             + (", tied with the output layer." if p["tied_word_embeddings"] else "."), ""]


def hardware(info: dict) -> str:
    device = info.get("environment", {}).get("device", {})
    if device.get("gpu"):
        return f"{device.get('gpu_count', 1)} x {device['gpu']} ({info.get('processes', 1)} process(es))"
    return f"CPU ({device.get('cpu_threads', '?')} threads, {info.get('processes', 1)} process(es))"


def training_section(info: dict, corpus: dict, tokenizer: dict) -> list[str]:
    settings = info.get("settings", {})
    corpus_name = corpus.get("hub", {}).get("name") or corpus["source"]
    corpus_text = str(corpus_name)
    if isinstance(corpus.get("train_words"), int):
        corpus_text += f" ({corpus['train_lines']:,} training lines, {corpus['train_words']:,} words)"
    rows = [
        ["corpus", corpus_text],
        ["tokenizer", f"WordPiece, {tokenizer.get('vocab_size', '?'):,} tokens, UNK rate "
                      f"{100 * tokenizer.get('unk_rate', 0):.2f}%, {tokenizer.get('subwords_per_word', 0):.3f} "
                      "sub-words per word" + (f" ({vocabulary_shortfall(tokenizer)})"
                                              if vocabulary_shortfall(tokenizer) else "")],
        ["objective", f"masked LM, {100 * settings.get('mlm_probability', 0.15):.0f}% of tokens masked"],
        ["sequence length", settings.get("seq_len", "?")],
        ["tokens seen", f"{info['tokens_seen']:,}"],
        ["epochs / steps", f"{info['epochs']} / {info['steps']:,}"],
        ["batch (blocks per step)", info.get("global_batch_blocks", settings.get("batch_size", "?"))],
        ["learning rate", settings.get("learning_rate", "?")],
        ["precision", info.get("precision", "?")],
        ["hardware", hardware(info)],
        ["wall time", f"{info['wall_time_s']:,.0f} s ({info['wall_time_s'] / 3600:.2f} h)"],
    ]
    return ["## Training details", ""] + table(["setting", "value"], rows, numeric=set()) + [""]


def perplexity_table(rows: list[dict]) -> list[str]:
    """Per-epoch losses, perplexity, throughput and elapsed time (perplexity.csv). Mid-epoch rows
    (kind "step", from pretrain.eval_every_steps) stay in the CSV and the plot; an "end" row (training
    stopped mid-epoch by max_steps or a budget) is shown with its fractional epoch."""
    cells = [[r["epoch"], r["step"], f"{float(r['train_loss']):.4f}", f"{float(r['eval_loss']):.4f}",
              f"{float(r['perplexity']):.2f}", f"{float(r['tokens_per_s']):,.0f}", f"{float(r['elapsed_s']):,.0f}"]
             for r in rows if r.get("kind") != "step"]
    return table(["epoch", "step", "train loss", "eval loss", "perplexity", "tokens/s", "elapsed s"], cells)


def perplexity_section(rows: list[dict]) -> list[str]:
    return (["## Perplexity per epoch", "",
             "Validation perplexity = exp(mean masked-LM loss) on fixed, seeded masks of the held-out split.", ""]
            + perplexity_table(rows) + [""])


def finetune_section(finetune: dict[str, dict]) -> list[str]:
    if not finetune:
        return []
    lines = ["## Fine-tuning results", "",
             "Mean ± standard deviation over seeds, on the validation split (percent)."]
    for task, summary in finetune.items():
        meta = task_metadata(task, summary)
        cells = [f"{summary['mean'][k]:.2f} ± {summary['std'].get(k, 0.0):.2f}" for k in meta["metrics"]]
        source = summary.get("source", {})
        hub = source.get("hub") or {}
        data = source.get("source", "?")
        if hub.get("name"):
            hub_id = "/".join(filter(None, (hub["name"], hub.get("config"))))
            data = hub_id if data == "hub" else f"{hub_id}, local copy"
        lines += ["", f"### {meta['pretty']} (data: {data}, seeds: {summary['seeds']})", ""]
        lines += table(meta["metrics"], [cells])
    return lines + [""]


def fill_mask_example(validation_text: str, tokenizer_dir: str, *, min_words: int = 6, max_words: int = 25,
                      max_lines: int = 5000) -> str | None:
    """The first held-out sentence of min..max words with a word the vocabulary holds whole (one
    token, letters only, not the first word) replaced by the mask token; its longest such word."""
    encode, mask_token, unk_id = _word_encoder(tokenizer_dir)
    with open(validation_text, encoding="utf-8") as handle:
        for line in itertools.islice(handle, max_lines):
            for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
                words = sentence.split()
                if not min_words <= len(words) <= max_words:
                    continue
                known = [i for i, word in enumerate(words[1:], 1) if word.isalpha() and len(word) >= 3
                         and len(ids := encode(word)) == 1 and ids[0] != unk_id]
                if known:
                    masked = max(known, key=lambda i: len(words[i]))
                    return " ".join(words[:masked] + [mask_token] + words[masked + 1:])
    return None


def _word_encoder(tokenizer_dir: str):
    """(ids of a text without special tokens, mask token, unk id) of a saved tokenizer: read with the
    `tokenizers` library from tokenizer.json (a fraction of a second; transformers' AutoTokenizer
    imports torch, about 5 s of CPU), through transformers for a folder without one."""
    path = Path(tokenizer_dir)
    if (path / "tokenizer.json").is_file() and (path / "tokenizer_config.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        special = read_json(path / "tokenizer_config.json")
        mask, unk = (_token_text(special.get(key)) for key in ("mask_token", "unk_token"))
        if mask and unk:
            return (lambda text: tokenizer.encode(text, add_special_tokens=False).ids), mask, tokenizer.token_to_id(unk)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return (lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]), tokenizer.mask_token, tokenizer.unk_token_id


def _token_text(token) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    return token.get("content") if isinstance(token, dict) else token


QA_SNIPPET = """\
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

# transformers 5 has no "question-answering" pipeline: decode the best span yourself.
path = "{path}"  # a SQuAD fine-tune of this model
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForQuestionAnswering.from_pretrained(path).eval()
question = "{question}"
context = "{context}"
inputs = tokenizer(question, context, truncation="only_second", return_tensors="pt")
with torch.no_grad():
    out = model(**inputs)
in_context = torch.tensor([part == 1 for part in inputs.sequence_ids(0)])
start = out.start_logits[0].masked_fill(~in_context, -1e9).argmax()
end = start + out.end_logits[0, start:].masked_fill(~in_context[start:], -1e9)[:30].argmax()
print(tokenizer.decode(inputs["input_ids"][0, start : end + 1]))"""


def usage_section(repo_id: str | None, fill_example: str | None, with_qa: bool) -> list[str]:
    target = repo_id or "path/to/model"
    example = fill_example or "Replace one word of a sentence like your training text with [MASK]."
    lines = ["## How to use", "", "Fill in a masked word (the sentence comes from the held-out text):", "",
             "```python", "from transformers import pipeline", "",
             f'fill = pipeline("fill-mask", model="{target}")', f"print(fill({example!r}))", "```", ""]
    if with_qa:
        lines += ["Answer a question with a SQuAD fine-tune of this model (the workflow writes one to "
                  "`results/finetune/squad/pretrained/seed<N>/model`):", "", "```python",
                  QA_SNIPPET.format(path="path/to/squad-model", question="What does the model predict?",
                                    context="The model predicts masked words from their context."),
                  "```", ""]
    return lines


def build_card(*, settings: dict, params: dict, info: dict, perplexity_rows: list[dict], corpus: dict,
               tokenizer: dict, finetune: dict[str, dict], repo_id: str | None,
               fill_example: str | None = None) -> ModelCard:
    model_name = settings["model_name"] or (repo_id.split("/")[-1] if repo_id else "bertflow-bert")
    final = float(perplexity_rows[-1]["perplexity"])
    data = card_data(settings, model_name=model_name,
                     results=eval_results(final, corpus, finetune, model_name),
                     datasets=hub_datasets([corpus, *(summary.get("source", {}) for summary in finetune.values())]))
    body = [
        f"# {model_name}", "",
        f"A BERT model ({params['layers']} layers, d_model {params['d_model']}, "
        f"{params['parameters']['total']:,} parameters) pretrained from scratch with masked language modelling "
        f"by the bertflow workflow. Final validation perplexity: {final:.2f}.", "",
        *architecture_section(params),
        *training_section(info, corpus, tokenizer),
        *perplexity_section(perplexity_rows),
        *finetune_section(finetune),
        *usage_section(repo_id, fill_example, with_qa="squad" in finetune),
        "## Intended use", "", settings["intended_use"].strip(), "",
        "## Limitations", "", settings["limitations"].strip(), "",
        "## Reproducibility", "",
        f"Produced with bertflow {info.get('environment', {}).get('packages', {}).get('bertflow', '?')}; "
        "the files `train_info.json`, `perplexity.csv` and `params_report.json` in this repository hold the "
        "full settings and package versions.", "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def write_model_card(*, params_json: str, train_info: str, perplexity_csv: str, corpus_stats: str,
                     tokenizer_report: str, finetune_summaries: dict[str, str], finetune_sources: dict[str, dict],
                     settings: dict, corpus: dict, repo_id: str | None, out: str,
                     validation_text: str | None = None, tokenizer_dir: str | None = None) -> ModelCard:
    """Stage entry: read the stage outputs and write README.md."""
    finetune = {}
    for task, path in finetune_summaries.items():
        finetune[task] = {**read_json(path), "source": finetune_sources.get(task, {"source": "generated"})}
    card = build_card(
        settings=settings, params=read_json(params_json), info=read_json(train_info),
        perplexity_rows=read_perplexity(perplexity_csv), corpus={**read_json(corpus_stats), **corpus},
        tokenizer=read_json(tokenizer_report), finetune=finetune, repo_id=repo_id,
        fill_example=fill_mask_example(validation_text, tokenizer_dir) if validation_text and tokenizer_dir else None,
    )
    write_text(out, str(card))
    return card
