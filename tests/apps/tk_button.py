"""Test app: a magenta button, a label, an entry; state written as JSON to argv[1].

Usage: python tk_button.py STATE_FILE [--title T] [--geometry WxH+X+Y] [--button-color #RRGGBB]
State keys: clicks, label, entry, text (multi-line Text widget), saved (ctrl+s presses),
escapes, right_clicks.
"""

from __future__ import annotations

import argparse
import json
import os
import tkinter as tk

BUTTON_RGB = "#ff00c8"  # tests look for this exact colour in screenshots


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_file")
    parser.add_argument("--title", default="guiagent tk test")
    parser.add_argument("--geometry", default="400x240+100+100")
    parser.add_argument("--button-color", default=BUTTON_RGB)
    args = parser.parse_args()

    state = {
        "clicks": 0,
        "label": "not clicked",
        "entry": "",
        "saved": 0,
        "escapes": 0,
        "right_clicks": 0,
    }

    def write() -> None:
        tmp = args.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, args.state_file)

    root = tk.Tk()
    root.title(args.title)
    root.geometry(args.geometry)
    root.configure(background="#ffffff")
    label = tk.Label(root, text=state["label"], background="#ffffff")
    label.pack(pady=4)

    def on_click() -> None:
        state["clicks"] += 1
        state["label"] = f"clicked {state['clicks']}"
        label.configure(text=state["label"])
        write()

    button = tk.Button(
        root,
        text="Press",
        command=on_click,
        background=args.button_color,
        activebackground=args.button_color,
        foreground="#ffffff",
        activeforeground="#ffffff",
        relief="flat",
        borderwidth=0,
        highlightthickness=0,
        width=12,
        height=3,
    )
    button.pack(pady=4)
    var = tk.StringVar()

    def on_entry(*_: object) -> None:
        state["entry"] = var.get()
        write()

    var.trace_add("write", on_entry)
    entry = tk.Entry(root, textvariable=var, width=30, background="#e0ffe0")
    entry.pack(pady=4)

    text = tk.Text(root, width=30, height=3, background="#ffffe0")
    text.pack(pady=4)

    def on_text(_: object) -> None:
        state["text"] = text.get("1.0", "end-1c")
        write()

    text.bind("<KeyRelease>", on_text)

    def on_save(_: object) -> str:
        state["saved"] += 1
        write()
        return "break"

    def on_escape(_: object) -> None:
        state["escapes"] += 1
        write()

    def on_right(_: object) -> None:
        state["right_clicks"] += 1
        write()

    root.bind_all("<Control-s>", on_save)
    root.bind_all("<Escape>", on_escape)
    button.bind("<Button-3>", on_right)
    write()
    root.mainloop()


if __name__ == "__main__":
    main()
