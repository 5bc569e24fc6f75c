"""Test app: a blue pad whose click, double click and right click handlers log the modifier
keys X reports in ``event.state``; the log is written as JSON to argv[1].

Usage: python tk_modifiers.py STATE_FILE [--title T] [--geometry WxH+X+Y]
State: {"events": [{"kind": "click" | "double" | "right", "mods": ["ctrl", "shift", ...]}]}
"""

from __future__ import annotations

import argparse
import json
import os
import tkinter as tk

PAD_RGB = "#0040ff"  # tests look for this exact colour in screenshots
# X modifier masks in event.state: Shift, Control, Mod1 (Alt), Mod4 (Super)
MASKS = {"shift": 0x1, "ctrl": 0x4, "alt": 0x8, "meta": 0x40}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_file")
    parser.add_argument("--title", default="guiagent tk modifiers")
    parser.add_argument("--geometry", default="300x200+100+100")
    args = parser.parse_args()
    state: dict[str, list[dict[str, object]]] = {"events": []}

    def write() -> None:
        tmp = args.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, args.state_file)

    def logger(kind: str):  # type: ignore[no-untyped-def]
        def log(event: tk.Event) -> None:
            mods = [name for name, mask in MASKS.items() if int(event.state) & mask]
            state["events"].append({"kind": kind, "mods": mods})
            write()

        return log

    root = tk.Tk()
    root.title(args.title)
    root.geometry(args.geometry)
    pad = tk.Frame(root, background=PAD_RGB, width=200, height=120)
    pad.pack(padx=20, pady=20)
    pad.bind("<ButtonPress-1>", logger("click"))
    pad.bind("<Double-ButtonPress-1>", logger("double"))
    pad.bind("<ButtonPress-3>", logger("right"))
    write()
    root.mainloop()


if __name__ == "__main__":
    main()
