"""A small Tk desktop app for guiagent's desktop tests and demos.

Run: ``python3 guiagent/demo/tkapp.py [--state-file PATH] [--geometry 640x400+100+100]
[--title "guiagent demo"]``.

Window title "guiagent demo"; an entry labelled "Name", a "Greet" button that shows
"Hello, <name>!", a "Subscribe" checkbox, and a list with "Add"/"Clear" buttons (Add
appends the entry's text). Large fonts so OCR reads it. On every change the state is
written as JSON to ``--state-file`` (atomically: written to a temporary file, then renamed),
with ``"ready": true`` once the window is mapped and ``"widgets"`` giving each named
widget's screen rectangle (name_label, name_entry, greet, greeting, subscribe, items, add,
clear).
"""

from __future__ import annotations

import argparse
import json
import os
import tkinter as tk
from pathlib import Path
from typing import Any

TITLE = "guiagent demo"
DEFAULT_GEOMETRY = "640x400+100+100"
FONT = ("DejaVu Sans", 16)


class DemoApp:
    def __init__(self, root: tk.Tk, state_file: Path | None, title: str = TITLE) -> None:
        self.root = root
        self.state_file = state_file
        self.ready = False
        self.title = title
        root.title(title)
        root.configure(background="white")

        self.name_var = tk.StringVar(master=root)
        self.greeting_var = tk.StringVar(master=root, value="")
        self.subscribe_var = tk.BooleanVar(master=root, value=False)

        common: dict[str, Any] = {"font": FONT, "background": "white", "foreground": "black"}
        tk.Label(root, text="Name", name="name_label", **common).grid(
            row=0, column=0, padx=16, pady=16, sticky="w"
        )
        self.entry = tk.Entry(
            root,
            textvariable=self.name_var,
            name="name_entry",
            font=FONT,
            width=20,
            relief="solid",
            borderwidth=2,
        )
        self.entry.grid(row=0, column=1, padx=8, pady=16, sticky="w")
        tk.Button(root, text="Greet", name="greet", font=FONT, command=self.greet).grid(
            row=0, column=2, padx=8, pady=16
        )
        tk.Label(root, textvariable=self.greeting_var, name="greeting", **common).grid(
            row=1, column=0, columnspan=3, padx=16, pady=8, sticky="w"
        )
        tk.Checkbutton(
            root,
            text="Subscribe",
            name="subscribe",
            variable=self.subscribe_var,
            command=self.save,
            activebackground="white",
            highlightthickness=0,
            **common,
        ).grid(row=2, column=0, columnspan=2, padx=16, pady=8, sticky="w")
        self.listbox = tk.Listbox(root, name="items", font=FONT, height=4, width=24)
        self.listbox.grid(row=3, column=0, columnspan=2, padx=16, pady=8, sticky="w")
        buttons = tk.Frame(root, background="white")
        buttons.grid(row=3, column=2, sticky="n", pady=8)
        tk.Button(buttons, text="Add", name="add", font=FONT, command=self.add).pack(
            pady=4, fill="x"
        )
        tk.Button(buttons, text="Clear", name="clear", font=FONT, command=self.clear).pack(
            pady=4, fill="x"
        )
        self.name_var.trace_add("write", lambda *_: self.save())
        root.bind("<Map>", self._on_map, add="+")

    def _on_map(self, _event: tk.Event) -> None:
        if not self.ready:
            self.root.update_idletasks()
            # the redraw is still in Xlib's buffer; a query is a round trip, and the server
            # answers it only after drawing everything sent before: "ready" means drawn
            self.root.winfo_pointerxy()
            self.ready = True
            self.save()

    def greet(self) -> None:
        name = self.name_var.get().strip()
        self.greeting_var.set(f"Hello, {name}!" if name else "Please enter a name")
        self.save()

    def add(self) -> None:
        text = self.name_var.get().strip()
        if text:
            self.listbox.insert("end", text)
        self.save()

    def clear(self) -> None:
        self.listbox.delete(0, "end")
        self.save()

    def state(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "title": self.title,
            "name": self.name_var.get(),
            "greeting": self.greeting_var.get(),
            "subscribed": bool(self.subscribe_var.get()),
            "items": list(self.listbox.get(0, "end")),
            "geometry": self.root.winfo_geometry(),
            "widgets": self.widget_boxes(),
        }

    def widget_boxes(self) -> dict[str, list[int]]:
        """Screen rectangles [x, y, width, height] of the named widgets (for tests)."""
        boxes: dict[str, list[int]] = {}
        stack: list[tk.Misc] = [self.root]
        while stack:
            widget = stack.pop()
            stack.extend(widget.winfo_children())
            name = widget.winfo_name()
            if widget is self.root or name.startswith("!"):
                continue
            boxes[name] = [
                widget.winfo_rootx(),
                widget.winfo_rooty(),
                widget.winfo_width(),
                widget.winfo_height(),
            ]
        return boxes

    def save(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(self.state()), encoding="utf-8")
        os.replace(tmp, self.state_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="guiagent demo Tk app")
    parser.add_argument("--state-file", type=Path, default=None, help="write state JSON here")
    parser.add_argument("--geometry", default=DEFAULT_GEOMETRY, help="Tk geometry, WxH+X+Y")
    parser.add_argument("--title", default=TITLE, help="window title")
    args = parser.parse_args(argv)
    root = tk.Tk()
    root.geometry(args.geometry)
    root.resizable(False, False)
    DemoApp(root, args.state_file, args.title)
    root.mainloop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
