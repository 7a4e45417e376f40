"""Write `evalsets/real/*.jsonl`: chat questions written for a model of SmolLM2-135M's size,
byte for byte (`python -m evalsets.build.real`). Common items are what such a model
mostly answers; hard items sit at the edge of what it can do (two-digit arithmetic, rarer
facts, letters counted in long words, formats with two constraints), where quantization
flips answers first. Open-ended prompts are reference-free (`agreement`)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "evalsets" / "real"
SEED = 7
# Room for a chat model's worked answer before its final number: at 48 new tokens, 22 of the
# 50 arithmetic answers of the fp32 SmolLM2 were cut off before they gave one.
ANSWER_ROOM = 128

FACTS_COMMON = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of England?", "London"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of China?", "Beijing"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Greece?", "Athens"),
    ("What color is the sky on a clear day?", "blue"),
    ("What color is grass?", "green"),
    ("What color are ripe bananas?", "yellow"),
    ("What color is snow?", "white"),
    ("What do bees make?", "honey"),
    ("What animal says moo?", "cow"),
    ("What animal barks?", "dog"),
    ("Which planet do we live on?", "Earth"),
    ("What is frozen water called?", "ice"),
    ("What star is at the center of our solar system?", "Sun"),
    ("What do we call a baby cat?", "kitten"),
    ("What do we call a baby dog?", "puppy"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("What gas do people need to breathe?", "oxygen"),
    ("What fruit is used to make wine?", "grape"),
    ("What do cows drink?", "water"),
    ("Which season comes after winter?", "spring"),
    ("What is the opposite of day?", "night"),
    ("Which month comes after January?", "February"),
    ("What language is spoken in France?", "French"),
]
FACTS_HARD = [
    ("What is the capital of Australia?", "Canberra"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Turkey?", "Ankara"),
    ("What is the capital of Brazil?", "Brasilia"),
    ("What is the capital of Switzerland?", "Bern"),
    ("What is the capital of Norway?", "Oslo"),
    ("What is the capital of Portugal?", "Lisbon"),
    ("What is the capital of Poland?", "Warsaw"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What is the chemical symbol for iron?", "Fe"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("Who painted the Mona Lisa?", "Leonardo"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the hardest natural substance?", "diamond"),
    ("What is the tallest animal?", "giraffe"),
    ("What is the longest river in Africa?", "Nile"),
    ("How many continents are there? Answer with a word.", "seven"),
    ("What is the freezing point of water in Celsius? Answer with a number.", "0"),
    ("Which organ pumps blood through the body?", "heart"),
]
OPPOSITES_COMMON = [
    "hot cold",
    "big small",
    "up down",
    "fast slow",
    "happy sad",
    "open closed",
    "light dark",
    "old young",
    "wet dry",
    "full empty",
    "hard soft",
    "early late",
    "rich poor",
    "tall short",
    "loud quiet",
    "in out",
]
OPPOSITES_HARD = [
    "ancient modern",
    "generous selfish",
    "victory defeat",
    "shallow deep",
    "arrive depart",
    "expand shrink",
    "rare common",
    "brave cowardly",
    "accept reject",
    "maximum minimum",
    "increase decrease",
    "vertical horizontal",
    "friend enemy",
    "include exclude",
]
COUNTS_COMMON = [
    ("How many legs does a dog have?", 4),
    ("How many legs does a spider have?", 8),
    ("How many days are in a week?", 7),
    ("How many wheels does a bicycle have?", 2),
    ("How many months are in a year?", 12),
    ("How many sides does a triangle have?", 3),
    ("How many sides does a square have?", 4),
    ("How many hours are in a day?", 24),
    ("How many legs does a bird have?", 2),
    ("How many eyes do people have?", 2),
    ("How many minutes are in an hour?", 60),
    ("How many sides does a hexagon have?", 6),
]
WORDS_HARD = [
    "elephant",
    "computer",
    "umbrella",
    "mountain",
    "keyboard",
    "butterfly",
    "chocolate",
    "adventure",
    "strawberry",
    "dinosaur",
    "happiness",
    "telephone",
]
INSTRUCTIONS_COMMON = [
    ("Reply with only the word yes.", r"(?i)^\W*yes\W*$"),
    ("Reply with only the word no.", r"(?i)^\W*no\W*$"),
    ("Write the number five using digits only.", r"^\D*5\D*$"),
    ("Say hello.", r"(?i)hello"),
    ("Name one color.", r"(?i)\b(red|blue|green|yellow|black|white|orange|purple|pink|brown)\b"),
    (
        "Name an animal that lives in the sea.",
        r"(?i)\b(fish|shark|whale|dolphin|octopus|seal|crab|turtle|jellyfish|squid)",
    ),
    ("Write the word apple.", r"(?i)apple"),
    ("Name a fruit.", r"(?i)\b(apple|banana|orange|grape|pear|mango|cherry|strawberr|peach|lemon)"),
    ("Write a greeting that starts with Hi.", r"^\W*Hi\b"),
    ("What is the first letter of the alphabet?", r"(?i)\ba\b"),
    ("Answer with a single word: what animal meows?", r"(?i)\bcats?\b"),
    ("Spell the word dog.", r"(?i)d\W*o\W*g"),
]
INSTRUCTIONS_HARD = [
    ("Write the word apple in capital letters and nothing else.", r"^\W*APPLE\W*$"),
    (
        "List three fruits, separated by commas, and nothing else.",
        r"^\s*[\w ]+,\s*[\w ]+,\s*[\w ]+\s*\.?\s*$",
    ),
    ("Answer in lowercase letters only: what color is the sky?", r"^[^A-Z]*blue[^A-Z]*$"),
    ("Reply with exactly two words: the name of a pet and its color.", r"^\W*\w+\W+\w+\W*$"),
    ("Write the numbers from one to five as digits, separated by spaces.", r"1\s+2\s+3\s+4\s+5"),
    (
        "Reply with a JSON object whose key is name and whose value is Sam.",
        r'\{\s*"name"\s*:\s*"Sam"\s*\}',
    ),
    ("Write the word cat backwards.", r"(?i)\btac\b"),
    ("Write the word hello in capital letters.", r"HELLO"),
    ("Reply with only a number: how many legs does a cat have?", r"^\D*4\D*$"),
    ("Start your answer with the word Yes and say whether the sun is hot.", r"^\W*Yes\b"),
    ("Write one sentence that ends with an exclamation mark.", r"!\s*$"),
    ("Write the word banana without the letter a.", r"(?i)^\W*bnn\W*$"),
]
OPEN = [
    "Give me a one-sentence tip for staying healthy.",
    "Describe a sunny day in one sentence.",
    "Why do people like music? Answer in one sentence.",
    "Suggest a name for a pet goldfish.",
    "Write a short sentence about the ocean.",
    "What is a good breakfast? Answer briefly.",
    "Give one reason to read books.",
    "Describe a cat in one sentence.",
    "What should I pack for a picnic? Answer briefly.",
    "Write a one-line poem about the moon.",
    "Explain what a computer does in one sentence.",
    "Give me one tip for a job interview.",
    "Describe autumn in one sentence.",
    "Why is sleep important? Answer in one sentence.",
    "Suggest a fun weekend activity.",
    "What makes a good friend? Answer briefly.",
    "Describe the color blue to someone in one sentence.",
    "Give a short tip for saving money.",
    "Write a sentence about a dog playing.",
    "What is your favorite season and why? Answer briefly.",
    "Explain why we recycle in one sentence.",
    "Describe a city at night in one sentence.",
    "Give one tip for learning a new language.",
    "Write a short thank-you note to a teacher.",
    "What is rain? Answer in one sentence.",
]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def row(id_: str, text: str, difficulty: str, tag: str, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "messages": chat(text), **fields, "difficulty": difficulty, "tags": [tag]}


def facts() -> list[dict[str, Any]]:
    rows = [
        row(
            f"fact-{i:02d}", q, "common", "facts", reference=a, scorer="contains", max_new_tokens=32
        )
        for i, (q, a) in enumerate(FACTS_COMMON)
    ]
    rows += [
        row(
            f"fact-hard-{i:02d}",
            q,
            "hard",
            "facts",
            reference=a,
            scorer="contains",
            max_new_tokens=32,
        )
        for i, (q, a) in enumerate(FACTS_HARD)
    ]
    return rows


def arithmetic(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(25):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append(
            row(
                f"arith-{i:02d}",
                f"What is {a} + {b}?",
                "common",
                "arithmetic",
                reference=str(a + b),
                scorer="numeric",
                max_new_tokens=ANSWER_ROOM,
            )
        )
    for i in range(25):
        if i % 2:
            a, b = rng.randint(12, 89), rng.randint(12, 89)
            q, ans = f"What is {a} + {b}?", a + b
        else:
            a, b = rng.randint(11, 30), rng.randint(3, 9)
            q, ans = f"What is {a} times {b}?", a * b
        rows.append(
            row(
                f"arith-hard-{i:02d}",
                q,
                "hard",
                "arithmetic",
                reference=str(ans),
                scorer="numeric",
                max_new_tokens=ANSWER_ROOM,
            )
        )
    return rows


def counting() -> list[dict[str, Any]]:
    rows = [
        row(
            f"count-{i:02d}",
            q,
            "common",
            "counting",
            reference=str(n),
            scorer="numeric",
            max_new_tokens=ANSWER_ROOM,
        )
        for i, (q, n) in enumerate(COUNTS_COMMON)
    ]
    rows += [
        row(
            f"count-hard-{i:02d}",
            f"How many letters are in the word {w}?",
            "hard",
            "counting",
            reference=str(len(w)),
            scorer="numeric",
            max_new_tokens=ANSWER_ROOM,
        )
        for i, w in enumerate(WORDS_HARD)
    ]
    return rows


def opposites() -> list[dict[str, Any]]:
    def one(i: int, pair: str, difficulty: str) -> dict[str, Any]:
        word, opposite = pair.split()
        id_ = f"opposite-{'hard-' if difficulty == 'hard' else ''}{i:02d}"
        return row(
            id_,
            f"What is the opposite of {word}?",
            difficulty,
            "opposites",
            reference=opposite,
            scorer="contains",
            max_new_tokens=24,
        )

    return [one(i, p, "common") for i, p in enumerate(OPPOSITES_COMMON)] + [
        one(i, p, "hard") for i, p in enumerate(OPPOSITES_HARD)
    ]


def instructions() -> list[dict[str, Any]]:
    rows = [
        row(
            f"instr-{i:02d}",
            q,
            "common",
            "instructions",
            reference=rx,
            scorer="regex",
            max_new_tokens=32,
        )
        for i, (q, rx) in enumerate(INSTRUCTIONS_COMMON)
    ]
    rows += [
        row(
            f"instr-hard-{i:02d}",
            q,
            "hard",
            "instructions",
            reference=rx,
            scorer="regex",
            max_new_tokens=32,
        )
        for i, (q, rx) in enumerate(INSTRUCTIONS_HARD)
    ]
    return rows


def open_ended() -> list[dict[str, Any]]:
    return [
        row(
            f"open-{i:02d}",
            q,
            "hard" if i % 3 == 0 else "common",
            "open-ended",
            scorer="agreement",
            max_new_tokens=40,
        )
        for i, q in enumerate(OPEN)
    ]


def build(out: Path = OUT) -> dict[str, int]:
    rng = random.Random(SEED)
    sets = {
        "facts": facts(),
        "arithmetic": arithmetic(rng),
        "counting": counting(),
        "opposites": opposites(),
        "instructions": instructions(),
        "open-ended": open_ended(),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in sets.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / f"{name}.jsonl").write_text(text, encoding="utf-8")
    return {name: len(rows) for name, rows in sets.items()}


if __name__ == "__main__":
    counts = build()
    print(counts, sum(counts.values()))
