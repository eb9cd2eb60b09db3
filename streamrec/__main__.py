"""``python -m streamrec`` runs the command line."""

from streamrec.cli import app

app()
