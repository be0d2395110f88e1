"""bwmon-tui's terminal output: Textual's frames sent as a per-cell diff, like curses does.

`driver` (the Textual driver and the switch), `screen` (the model of what the terminal shows),
`runs` (changed cells and their encoding), `pens` (SGR), `moves` (cursor moves).
"""
