"""Commands of the ``segdata`` CLI that live in their own module (one module per command or
command family); ``segdata/cli.py`` registers them on the group. A command module parses options,
calls the library and renders; it computes nothing."""
