"""Test app: a GTK 3 form on the accessibility bus (run it with Debian's /usr/bin/python3,
which has python3-gi and gir1.2-gtk-3.0).

Usage: /usr/bin/python3 gtk_form.py STATE_FILE [--title T] [--steal-focus | --buttons]

Fields, each a label left of an entry (the label is the entry's mnemonic label, so the
entry is named after it on the bus): Name, Email, Password (not visible: a password text).
``--steal-focus``: the first key typed into Name moves the focus to Email. The fields'
values are written as JSON to STATE_FILE on every change. ``--buttons``: instead, a plain
label ``OK``, a disabled button ``Apply`` and a button ``Save``; STATE_FILE holds how many
times each button was pressed (``clicks``).
"""

import argparse
import json
import os

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_file")
    parser.add_argument("--title", default="gtk form")
    parser.add_argument("--steal-focus", action="store_true")
    parser.add_argument("--buttons", action="store_true")
    args = parser.parse_args()

    window = Gtk.Window(title=args.title)
    window.move(80, 80)
    window.set_default_size(560, 220)
    if args.buttons:
        buttons(window, args.state_file)
        return
    grid = Gtk.Grid(column_spacing=16, row_spacing=12, margin=16)
    window.add(grid)
    entries = {}
    for row, name in enumerate(("Name", "Email", "Password")):
        label = Gtk.Label(label=name, xalign=0)
        entry = Gtk.Entry(width_chars=28)
        if name == "Password":
            entry.set_visibility(False)
        label.set_mnemonic_widget(entry)
        grid.attach(label, 0, row, 1, 1)
        grid.attach(entry, 1, row, 1, 1)
        entries[name] = entry

    def write(*_args: object) -> None:
        tmp = args.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({name: e.get_text() for name, e in entries.items()}, fh)
        os.replace(tmp, args.state_file)

    for entry in entries.values():
        entry.connect("changed", write)
    if args.steal_focus:

        def steal(*_args: object) -> bool:
            entries["Email"].grab_focus()  # the next keys go to Email
            return False

        entries["Name"].connect("key-release-event", steal)
    window.connect("destroy", Gtk.main_quit)
    window.show_all()
    write()
    Gtk.main()


def buttons(window: Gtk.Window, state_file: str) -> None:
    clicks = {"Apply": 0, "Save": 0}

    def write() -> None:
        with open(state_file + ".tmp", "w", encoding="utf-8") as fh:
            json.dump({"clicks": clicks}, fh)
        os.replace(state_file + ".tmp", state_file)

    def press(_button: Gtk.Button, name: str) -> None:
        clicks[name] += 1
        write()

    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=16, margin=16)
    window.add(box)
    box.pack_start(Gtk.Label(label="OK"), False, False, 0)
    for name in ("Apply", "Save"):
        button = Gtk.Button(label=name)
        button.set_sensitive(name != "Apply")
        button.connect("clicked", press, name)
        box.pack_start(button, False, False, 0)
    window.connect("destroy", Gtk.main_quit)
    window.show_all()
    write()
    Gtk.main()


if __name__ == "__main__":
    main()
