"""Views of segdata's result records: :mod:`segdata.render.text` for the terminal. Views read the
records' dicts and compute nothing."""
