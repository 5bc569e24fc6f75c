"""A Tk window with one coloured button (magenta unless argv[4] names another); pressing it writes {"pressed": N, "typed": ...} to argv[1]."""

import json
import sys
import tkinter as tk

state_path = sys.argv[1]
x, y = (int(v) for v in (sys.argv[2:4] if len(sys.argv) >= 4 else ("200", "150")))
colour = sys.argv[4] if len(sys.argv) >= 5 else "#ff00ff"
state = {"pressed": 0, "typed": ""}
root = tk.Tk()
root.title("guiagent target")
root.geometry(f"420x260+{x}+{y}")
root.configure(bg="white")


def save() -> None:
    with open(state_path, "w") as f:
        json.dump(state, f)


def press() -> None:
    state["pressed"] += 1
    save()


def typed(*_: object) -> None:
    state["typed"] = entry_var.get()
    save()


button = tk.Button(
    root,
    text="Press me",
    bg=colour,
    activebackground=colour,
    font=("DejaVu Sans", 16),
    command=press,
)
button.place(x=40, y=40, width=200, height=70)
entry_var = tk.StringVar()
entry_var.trace_add("write", typed)
entry = tk.Entry(root, textvariable=entry_var, font=("DejaVu Sans", 16), bg="#00ffff")
entry.place(x=40, y=150, width=300, height=40)
save()
root.mainloop()
