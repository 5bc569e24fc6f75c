"""Test app: Tk forms that try to make a desktop step pass when it should not.

Usage: python tk_traps.py STATE_FILE MODE [--title T]

Modes (the values of every entry are written as JSON to STATE_FILE on every change):

- ``disabled``: Name's entry is disabled (a click does not focus it); Email has the focus,
  so text typed "into Name" lands in Email.
- ``prefilled``: Name's entry is read-only and already holds ``alice``; Email has the focus.
- ``stealing``: Name's entry holds ``alice``; the first key typed into it moves the focus
  to Email (the rest of the text lands there).
- ``flat``: one row, ``Name`` then ``Note``, each a flat entry drawn like the window (no
  outline at all); Note has the focus, and a label below mirrors Note's text.
- ``mixed``: as ``flat``, but Note's entry has an outline.
- ``buttons``: a plain label ``OK`` (not a button), a disabled button ``Apply`` and an
  enabled button ``Save``; ``clicks`` counts the presses of each button.
- ``notice``: a larger window (it covers the others started before it) reading only
  ``Unsaved changes`` and ``Saved``.
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
    parser.add_argument(
        "mode", choices=["disabled", "prefilled", "stealing", "flat", "mixed", "buttons", "notice"]
    )
    parser.add_argument("--title", default="tk traps")
    args = parser.parse_args()

    root = tk.Tk()
    root.title(args.title)
    root.geometry("760x340+40+40" if args.mode == "notice" else "700x260+60+60")
    root.configure(background="white")
    values: dict[str, tk.StringVar] = {}
    clicks = {"Apply": 0, "Save": 0}

    def write(*_: object) -> None:
        tmp = args.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            state = {name: var.get() for name, var in values.items()}
            json.dump({**state, "clicks": clicks}, fh)
        os.replace(tmp, args.state_file)

    def entry(name: str, row: int, column: int, flat: bool = False, **options: object) -> tk.Entry:
        values[name] = tk.StringVar(master=root)
        values[name].trace_add("write", write)
        tk.Label(root, text=name, font=FONT, background="white").grid(
            row=row, column=column, padx=16, pady=10, sticky="w"
        )
        looks: dict[str, object] = (
            {"relief": "flat", "borderwidth": 0, "background": "white"}
            if flat
            else {"relief": "solid", "borderwidth": 2}
        )
        widget = tk.Entry(
            root,
            textvariable=values[name],
            font=FONT,
            width=12 if flat else 20,
            highlightthickness=0,
            disabledbackground="white",
            readonlybackground="white",
            **looks,
            **options,
        )
        widget.grid(row=row, column=column + 1, padx=8, pady=10, sticky="w")
        return widget

    if args.mode in ("disabled", "prefilled", "stealing"):
        name = entry("Name", 0, 0)
        email = entry("Email", 1, 0)
        if args.mode != "disabled":
            values["Name"].set("alice")
        if args.mode == "stealing":
            name.bind("<KeyRelease>", lambda _event: email.focus_set())
        else:
            name.configure(state="disabled" if args.mode == "disabled" else "readonly")
            email.focus_force()
    elif args.mode in ("flat", "mixed"):
        entry("Name", 0, 0, flat=True)
        note = entry("Note", 0, 2, flat=args.mode == "flat")
        tk.Label(root, textvariable=values["Note"], font=FONT, background="white").grid(
            row=1, column=0, columnspan=4, pady=10
        )
        note.focus_force()
    elif args.mode == "notice":
        for text in ("Unsaved changes", "Saved"):
            tk.Label(root, text=text, font=FONT, background="white").pack(pady=20)
    else:
        tk.Label(root, text="OK", font=FONT, background="white").pack(pady=10)

        def press(name: str) -> None:
            clicks[name] += 1
            write()

        for name, state in (("Apply", "disabled"), ("Save", "normal")):
            tk.Button(
                root, text=name, font=FONT, state=state, command=lambda n=name: press(n)
            ).pack(pady=10)
    write()
    root.mainloop()


if __name__ == "__main__":
    main()
