"""Write `evalsets/tools/`: tool-calling and structured-output prompts for SmolLM2 (docs/tools.md).

`calls.jsonl`: 48 requests declaring functions, as an agent framework sends them: the tools,
then two earlier exchanges in the conversation (a question answered with a call: the history
an agent's trace holds, and what makes a 135M model answer in calls at all), then the question.
40 have one right call (`scorer = "tool_call"`, its reference the call), 8 are best answered in
words (reference-free: judged by calls first, then by meaning). `json.jsonl`: 24 extraction
requests asking for a JSON object by schema (`response_format`), one earlier exchange as
history, reference-free (the fields compared, the schema checked).

`python -m evalsets.build.tools` rewrites both files (deterministic: no randomness).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "evalsets" / "tools"
log = logging.getLogger(__name__)


def fn(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


S = {"type": "string"}
N = {"type": "number"}
TOOLS = [
    fn("get_weather", "Current weather for a city", {"city": S}, ["city"]),
    fn(
        "convert_currency",
        "Convert an amount of money between currencies (ISO codes)",
        {"amount": N, "from": S, "to": S},
        ["amount", "from", "to"],
    ),
    fn("get_time", "The current local time in a city", {"city": S}, ["city"]),
    fn(
        "translate",
        "Translate a text into a language",
        {"text": S, "language": S},
        ["text", "language"],
    ),
]


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "arguments": args}


def exchange(n: int, question: str, made: dict[str, Any]) -> list[Any]:
    """One earlier turn of the conversation: asked, answered with a call. (With the tool's
    result and a reply in words after each call, SmolLM2 wrote a `<tool_response>` itself
    instead of a call on 10 of 10 sampled tool requests; with the calls alone it called on
    16 of 16 sampled items.)"""
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": made["name"], "arguments": json.dumps(made["arguments"])},
                }
            ],
        },
    ]


HISTORY = [
    *exchange(1, "What's the weather in Berlin?", call("get_weather", city="Berlin")),
    *exchange(
        2,
        "Convert 20 GBP to JPY.",
        call("convert_currency", amount=20, **{"from": "GBP", "to": "JPY"}),
    ),
]

CITIES = ["Paris", "Tokyo", "Madrid", "Toronto", "Sydney", "Cairo", "Oslo", "Lima", "Seoul", "Rome"]
MONEY = [(100, "USD", "EUR"), (55.5, "EUR", "CHF"), (2000, "JPY", "USD"), (75, "CAD", "GBP"),
         (12, "AUD", "NZD"), (300, "SEK", "NOK"), (9.99, "USD", "INR"), (1500, "MXN", "USD"),
         (40, "GBP", "EUR"), (250, "CNY", "KRW")]  # fmt: skip
PHRASES = [("Good morning", "French"), ("Thank you very much", "Spanish"),
           ("Where is the station?", "German"), ("I love books", "Italian"),
           ("See you tomorrow", "Portuguese")]  # fmt: skip
WORDS_ONLY = [
    "Write a haiku about the sea.",
    "What is 7 times 8?",
    "Name three primary colors.",
    "Who wrote Romeo and Juliet?",
    "Give me a synonym for happy.",
    "What is the capital of Canada?",
    "Explain in one sentence what a noun is.",
    "Tell me a short joke.",
]


def calls_items() -> list[dict[str, Any]]:
    asks: list[tuple[str, dict[str, Any]]] = []
    for i, city in enumerate(CITIES):
        q = [f"What's the weather in {city}?", f"Is it raining in {city} right now?"][i % 2]
        asks.append((q, call("get_weather", city=city)))
    for amount, a, b in MONEY:
        asks.append(
            (
                f"Convert {amount} {a} to {b}.",
                call("convert_currency", amount=amount, **{"from": a, "to": b}),
            )
        )
    for i, city in enumerate(CITIES):
        q = [f"What time is it in {city}?", f"Tell me the current time in {city}."][i % 2]
        asks.append((q, call("get_time", city=city)))
    for text, lang in PHRASES:
        asks.append(
            (f"Translate '{text}' into {lang}.", call("translate", text=text, language=lang))
        )
    for text, lang in PHRASES:
        asks.append(
            (f"How do you say '{text}' in {lang}?", call("translate", text=text, language=lang))
        )
    items = []
    for n, (question, right) in enumerate(asks):
        items.append(
            {
                "id": f"tool-{n:02d}-{right['name']}",
                "messages": [*HISTORY, {"role": "user", "content": question}],
                "tools": TOOLS,
                "scorer": "tool_call",
                "reference": json.dumps(right),
                "max_new_tokens": 48,
                "tags": [f"tool={right['name']}"],
                "difficulty": "hard"
                if right["name"] in ("convert_currency", "translate")
                else "common",
            }
        )
    for n, question in enumerate(WORDS_ONLY):
        items.append(
            {
                "id": f"tool-words-{n:02d}",
                "messages": [*HISTORY, {"role": "user", "content": question}],
                "tools": TOOLS,
                "scorer": "agreement",
                "max_new_tokens": 48,
                "tags": ["tool=none"],
            }
        )
    return items


PEOPLE = [("Maria", 34, "Lisbon"), ("Kenji", 51, "Osaka"), ("Amara", 27, "Lagos"),
          ("Lars", 62, "Bergen"), ("Priya", 19, "Pune"), ("Tomás", 45, "Cordoba"),
          ("Chen", 38, "Chengdu"), ("Olga", 71, "Kazan")]  # fmt: skip
PRODUCTS = [("desk lamp", 24.99, 3), ("rain jacket", 89.5, 1), ("coffee beans", 12.0, 4),
            ("USB cable", 7.25, 10), ("chess set", 45.0, 2), ("yoga mat", 30.75, 1),
            ("notebook", 3.5, 12), ("backpack", 59.9, 1)]  # fmt: skip
EVENTS = [("team meeting", "2026-03-02", "09:30"), ("dentist", "2026-04-17", "14:00"),
          ("book club", "2026-05-05", "19:15"), ("flight to Rome", "2026-06-21", "06:45"),
          ("yoga class", "2026-07-08", "18:00"), ("birthday dinner", "2026-08-30", "20:00"),
          ("code review", "2026-09-14", "11:00"),
          ("car service", "2026-10-01", "08:15")]  # fmt: skip


def schema(name: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": name,
            "schema": {
                "type": "object",
                "properties": props,
                "required": list(props),
                "additionalProperties": False,
            },
        },
    }


def json_items() -> list[dict[str, Any]]:
    person = schema("person", {"name": S, "age": {"type": "integer"}, "city": S})
    order = schema("order", {"product": S, "price": N, "quantity": {"type": "integer"}})
    event = schema("event", {"title": S, "date": S, "time": S})
    shot = [
        {"role": "user", "content": "Extract: Jonas is 29 and lives in Graz."},
        {"role": "assistant", "content": '{"name": "Jonas", "age": 29, "city": "Graz"}'},
    ]
    items = []
    for n, (name, age, city) in enumerate(PEOPLE):
        text = f"Extract: {name} is {age} and lives in {city}."
        items.append((f"json-person-{n}", person, shot, text))
    shot = [
        {"role": "user", "content": "Extract: 2 packs of pencils at 4.20 each."},
        {"role": "assistant", "content": '{"product": "pencils", "price": 4.2, "quantity": 2}'},
    ]
    for n, (product, price, qty) in enumerate(PRODUCTS):
        text = f"Extract: {qty} {product} at {price} each."
        items.append((f"json-order-{n}", order, shot, text))
    shot = [
        {"role": "user", "content": "Extract: piano lesson on 2026-01-12 at 16:30."},
        {
            "role": "assistant",
            "content": '{"title": "piano lesson", "date": "2026-01-12", "time": "16:30"}',
        },
    ]
    for n, (title, date, time) in enumerate(EVENTS):
        text = f"Extract: {title} on {date} at {time}."
        items.append((f"json-event-{n}", event, shot, text))
    return [
        {
            "id": item_id,
            "messages": [*history, {"role": "user", "content": text}],
            "response_format": fmt,
            "scorer": "agreement",
            "max_new_tokens": 48,
            "tags": [f"json={fmt['json_schema']['name']}"],
        }
        for item_id, fmt, history, text in items
    ]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("calls.jsonl", calls_items()), ("json.jsonl", json_items())):
        path = OUT / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        log.info("wrote %s (%d items)", path, len(rows))


if __name__ == "__main__":
    main()
