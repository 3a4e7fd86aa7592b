"""A small seeded "world" that generates English-like text with learnable structure.

The offline default corpus must be something a tiny BERT can measurably learn in minutes:
each person has fixed facts (city, job, pet, favourite food) that recur across documents,
verbs agree with their subjects, reviews keep one polarity per sentence, and counting
sequences are predictable. The same lexicon feeds the generated SST-2 and SQuAD tasks, so
pretraining on this corpus helps fine-tuning on them, as real pretraining does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST_NAMES = (
    "alice bob carol david emma frank grace henry irene jack karen leo maria nathan olivia "
    "peter quinn rachel samuel tina victor wendy xavier yara zoe"
).split()
CITIES = (
    "paris london berlin madrid rome vienna prague lisbon dublin oslo athens warsaw "
    "budapest helsinki amsterdam brussels"
).split()
JOBS = "teacher doctor farmer baker pilot lawyer nurse painter writer engineer chef singer".split()
ANIMALS = "dog cat horse rabbit parrot turtle hamster goat".split()
FOODS = "bread cheese apples soup rice pasta fish cake oranges beans".split()
COLORS = "red blue green yellow black white purple orange".split()
NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()

POSITIVE = (
    "wonderful brilliant charming delightful moving beautiful funny clever gripping "
    "touching superb engaging"
).split()
NEGATIVE = (
    "boring dull awful clumsy tedious messy silly bland painful weak forgettable lifeless"
).split()
FILM_PARTS = "story acting music dialogue ending script cast direction pacing".split()


@dataclass(frozen=True)
class Person:
    name: str
    city: str
    job: str
    pet: str
    food: str
    color: str
    born: str  # weekday, a fact for QA


@dataclass
class World:
    """People with fixed facts; built once from a seed so every generator agrees on them."""

    seed: int = 7
    people: list[Person] = field(default_factory=list)

    def __post_init__(self):
        rng = random.Random(self.seed)
        self.people = [
            Person(
                name=name,
                city=rng.choice(CITIES),
                job=rng.choice(JOBS),
                pet=rng.choice(ANIMALS),
                food=rng.choice(FOODS),
                color=rng.choice(COLORS),
                born=rng.choice(WEEKDAYS),
            )
            for name in FIRST_NAMES
        ]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def fact_sentences(person: Person) -> list[str]:
    """All true statements about one person (used by the corpus and by generated SQuAD)."""
    p = person
    return [
        f"{p.name} lives in {p.city} .",
        f"{p.name} works as {_article(p.job)} {p.job} in {p.city} .",
        f"{p.name} has {_article(p.pet)} {p.pet} that likes {p.food} .",
        f"the favourite colour of {p.name} is {p.color} .",
        f"{p.name} was born on a {p.born} .",
        f"every morning {p.name} eats {p.food} before work .",
    ]


def review_sentence(rng: random.Random, positive: bool) -> str:
    words = POSITIVE if positive else NEGATIVE
    a, b = rng.sample(words, 2)
    part1, part2 = rng.sample(FILM_PARTS, 2)
    templates = (
        f"the {part1} was {a} and the {part2} was {b} .",
        f"a {a} film with {_article(b)} {b} {part2} .",
        f"i found the {part1} {a} , and the {part2} felt {b} .",
        f"overall it is {_article(a)} {a} movie .",
    )
    return rng.choice(templates)


def counting_sentence(rng: random.Random) -> str:
    start = rng.randrange(0, len(NUMBERS) - 4)
    length = rng.randrange(3, min(7, len(NUMBERS) - start) + 1)
    return " ".join(NUMBERS[start : start + length]) + " ."


def agreement_sentence(rng: random.Random) -> str:
    animal, food = rng.choice(ANIMALS), rng.choice(FOODS)
    if rng.random() < 0.5:
        return f"the {animal} eats {food} and sleeps all day ."
    return f"the {animal}s eat {food} and sleep all day ."


def generate_corpus(num_sentences: int, seed: int) -> list[str]:
    """Documents (one per line) of 3-6 sentences, about `num_sentences` sentences in total."""
    world = World(seed=seed)
    rng = random.Random(seed + 1)
    documents: list[str] = []
    produced = 0
    while produced < num_sentences:
        kind = rng.random()
        if kind < 0.5:
            person = rng.choice(world.people)
            sentences = rng.sample(fact_sentences(person), rng.randint(3, 5))
        elif kind < 0.8:
            positive = rng.random() < 0.5
            sentences = [review_sentence(rng, positive) for _ in range(rng.randint(3, 5))]
        else:
            sentences = [
                rng.choice((counting_sentence, agreement_sentence))(rng) for _ in range(rng.randint(3, 6))
            ]
        documents.append(" ".join(sentences))
        produced += len(sentences)
    return documents
