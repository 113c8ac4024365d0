"""Writes support_tickets.csv: a small labelled set of made-up support tickets for replay tests.

    uv run python tests/data/generate_support_tickets.py

Templates with interchangeable parts, shuffled with a fixed seed, so the file is stable.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OPENERS = ["Hi,", "Hello,", "Hey team,", "Good morning,", "", "Dear support,"]
CLOSERS = ["Thanks.", "Thank you!", "Regards, Sam", "Please help.", "", "Cheers"]

PARTS = {
    "billing": [
        "I was charged {n} times for the same {thing}",
        "my invoice for {month} shows the wrong amount",
        "can I get a refund for the {thing} I cancelled",
        "the payment of {n}0 EUR went through twice",
        "please update the VAT number on my invoices",
        "why did my subscription price go up in {month}",
        "how do I change the card you charge every month",
    ],
    "technical": [
        "the {screen} page shows an error since this morning",
        "the app crashes when I open the {screen}",
        "the export to {fmt} fails with an error",
        "your API returns a timeout on the {screen} endpoint",
        "the {screen} does not load in {browser}",
        "sync with {fmt} stopped working after the update",
        "I get a blank screen after clicking {screen}",
    ],
    "account": [
        "I cannot log in, my password is not accepted",
        "the password reset email never arrives",
        "please add my colleague {name} as an admin",
        "I lost my phone and cannot pass two-factor login",
        "how do I delete my account and my data",
        "please change the email address on my account to a new one",
        "my account got locked after too many attempts",
    ],
    "shipping": [
        "my order {n}{n}{n} has not arrived yet",
        "the tracking number for my parcel does not work",
        "the package arrived damaged, the box was crushed",
        "can you deliver my order to a different address",
        "the courier says delivered but I have no parcel",
        "when will my {thing} ship, it has been {n} weeks",
        "I want to return the {thing} I received",
    ],
}
FILL = {
    "n": ["2", "3", "4", "5"],
    "thing": ["subscription", "order", "plan", "licence", "chair", "headset"],
    "month": ["March", "April", "May", "June"],
    "screen": ["dashboard", "reports", "settings", "billing", "calendar"],
    "fmt": ["CSV", "Excel", "PDF", "Google Sheets"],
    "browser": ["Chrome", "Firefox", "Safari", "Edge"],
    "name": ["Maria", "Tom", "Aisha", "Lukas"],
}


def ticket(rng: random.Random, label: str) -> str:
    body = rng.choice(PARTS[label])
    for key, options in FILL.items():
        while "{" + key + "}" in body:
            body = body.replace("{" + key + "}", rng.choice(options), 1)
    return " ".join(p for p in (rng.choice(OPENERS), body + ".", rng.choice(CLOSERS)) if p)


def main() -> None:
    rng = random.Random(7)
    rows = [(ticket(rng, label), label) for label in PARTS for _ in range(80)]
    rng.shuffle(rows)
    out = Path(__file__).with_name("support_tickets.csv")
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
