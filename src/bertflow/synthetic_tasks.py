"""Offline stand-ins for SST-2 and SQuAD, built from the same world as the generated corpus."""

from __future__ import annotations

import random

from .synthetic import ANIMALS, CITIES, JOBS, WEEKDAYS, World, fact_sentences, review_sentence

# Questions per fact: (question template, attribute of Person holding the answer).
QUESTIONS = (
    ("where does {name} live ?", "city"),
    ("what does {name} work as ?", "job"),
    ("which animal does {name} have ?", "pet"),
    ("what is the favourite colour of {name} ?", "color"),
    ("on which day was {name} born ?", "born"),
    ("what does {name} eat every morning ?", "food"),
)


def generate_sst2(num_examples: int, seed: int) -> list[tuple[str, int]]:
    """Balanced (sentence, label) pairs; label 1 = positive review."""
    rng = random.Random(seed)
    rows = []
    for i in range(num_examples):
        label = i % 2
        rows.append((review_sentence(rng, positive=bool(label)), label))
    rng.shuffle(rows)
    return rows


def _distractor(rng: random.Random) -> str:
    return rng.choice((
        f"the {rng.choice(ANIMALS)} sleeps in {rng.choice(CITIES)} .",
        f"a {rng.choice(JOBS)} visited on {rng.choice(WEEKDAYS)} .",
    ))


def generate_squad(num_articles: int, seed: int, world_seed: int | None = 7, version_2: bool = False) -> dict:
    """Official SQuAD v1.1 JSON: one article per person, contexts of facts plus distractors.

    `world_seed` 7 is the generated corpus' world, whose facts pretraining has seen; None draws
    fresh facts for every article, so answers can only be read from the context, not recalled
    (what the validation split uses). `version_2`: official v2.0 JSON instead, each article with
    UNANSWERABLE_PER_ARTICLE more questions about a person the context does not mention (a third
    of the questions, as in SQuAD v2.0's training set)."""
    rng = random.Random(seed)
    fixed_people = None if world_seed is None else World(seed=world_seed).people
    data = []
    for article in range(num_articles):
        people = fixed_people or World(seed=rng.randrange(2**31)).people
        person = people[article % len(people)]
        facts = fact_sentences(person)
        sentences = facts + [_distractor(rng) for _ in range(2)]
        rng.shuffle(sentences)
        context = " ".join(sentences)
        qas = []
        for q_index, (template, attribute) in enumerate(QUESTIONS):
            answer = getattr(person, attribute)
            # Anchor the answer in the sentence that states this fact, after the person's name.
            anchor = next(s for s in facts if answer in s.split() and person.name in s.split())
            start = context.index(anchor) + anchor.index(f" {answer}", anchor.index(person.name)) + 1
            qas.append({
                "id": f"gen-{seed}-{article}-{q_index}",
                "question": template.format(name=person.name),
                "answers": [{"text": answer, "answer_start": start}],
            })
        if version_2:
            for qa in qas:
                qa["is_impossible"] = False
            qas += _unanswerable(rng, people, person, context, f"gen-{seed}-{article}")
        data.append({"title": f"{person.name}-{article}", "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "v2.0" if version_2 else "1.1", "data": data}


UNANSWERABLE_PER_ARTICLE = 3


def _unanswerable(rng: random.Random, people: list, person, context: str, id_prefix: str) -> list[dict]:
    """Questions about someone else, whose name the context lacks; the plausible answer is the
    article's person's fact (what a reader matching the question's form only would give)."""
    others = [p for p in people if p.name != person.name]
    qas = []
    for q_index in rng.sample(range(len(QUESTIONS)), UNANSWERABLE_PER_ARTICLE):
        template, attribute = QUESTIONS[q_index]
        plausible = getattr(person, attribute)
        qas.append({
            "id": f"{id_prefix}-na{q_index}",
            "question": template.format(name=rng.choice(others).name),
            "answers": [], "is_impossible": True,
            "plausible_answers": [{"text": plausible, "answer_start": context.index(f" {plausible}") + 1}],
        })
    return qas
