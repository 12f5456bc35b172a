"""Views of segdata's result records: :mod:`segdata.render.text` for the terminal,
:mod:`segdata.render.html` for notebooks (the ``_repr_html_`` cards) and the pages of
:mod:`segdata.render.report` (``segdata report``). Views read the records' dicts and compute
nothing."""
