from openhorde.cli.main import app

app()
