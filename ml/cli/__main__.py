from ml.cli import run

run()
