from monitor.commands.app import app

app(prog_name="monitor")
