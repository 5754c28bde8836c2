#!/usr/bin/env python3
"""Convert a SemEval-2014 ABSA XML file to CSV: id, text, categories (`;`-separated).

Usage: semeval_to_csv.py INPUT.xml OUTPUT.csv

Only the Python standard library is used. `anecdotes/miscellaneous` is written as
`anecdotes_miscellaneous` so category names work as habitlens label names.
"""
import csv
import sys
import xml.etree.ElementTree as ET


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root = ET.parse(sys.argv[1]).getroot()
    with open(sys.argv[2], "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "text", "categories"])
        for sentence in root.iter("sentence"):
            cats = [
                c.get("category").replace("/", "_")
                for c in sentence.iter("aspectCategory")
            ]
            writer.writerow([sentence.get("id"), sentence.findtext("text"), ";".join(cats)])


if __name__ == "__main__":
    main()
