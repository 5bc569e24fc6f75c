"""Test app: a Tk form whose typing checks are made from the pixels (Tk is not on AT-SPI).

Usage: python tk_form.py STATE_FILE [--title T] [--steal-focus]

Fields, each a label left of an outlined entry: Name, Email, Password (masked with ``●``),
Code (narrow: long text scrolls). ``--steal-focus``: the first key typed into Name moves
the focus to Email (the rest of the text lands there). The fields' values are written as
JSON to STATE_FILE on every change.
"""

from __future__ import annotations

import argparse
import json
import os
import tkinter as tk

FONT = ("DejaVu Sans", 16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_file")
    parser.add_argument("--title", default="tk form")
    parser.add_argument("--steal-focus", action="store_true")
    args = parser.parse_args()

    root = tk.Tk()
    root.title(args.title)
    root.geometry("620x300+60+60")
    root.configure(background="white")
    fields = {"Name": 24, "Email": 24, "Password": 24, "Code": 8}
    values = {name: tk.StringVar(master=root) for name in fields}
    entries = {}
    for row, (name, width) in enumerate(fields.items()):
        tk.Label(root, text=name, font=FONT, background="white").grid(
            row=row, column=0, padx=16, pady=10, sticky="w"
        )
        entry = tk.Entry(
            root,
            textvariable=values[name],
            font=FONT,
            width=width,
            relief="solid",
            borderwidth=2,
            highlightthickness=0,
            show="\u25cf" if name == "Password" else "",
        )
        entry.grid(row=row, column=1, padx=8, pady=10, sticky="w")
        entries[name] = entry

    def write(*_: object) -> None:
        tmp = args.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({name: var.get() for name, var in values.items()}, fh)
        os.replace(tmp, args.state_file)

    for var in values.values():
        var.trace_add("write", write)
    if args.steal_focus:

        def steal(_event: tk.Event) -> None:
            entries["Email"].focus_set()  # the next keys go to Email

        entries["Name"].bind("<KeyRelease>", steal)
    write()
    root.mainloop()


if __name__ == "__main__":
    main()
