from opsconductor.cli.main import app

app(prog_name="opsconductor")
