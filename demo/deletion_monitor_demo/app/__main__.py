"""`python -m deletion_monitor.demo_app`: `deletion-monitor demo-app` on its own."""

import argparse
import sys

from deletion_monitor.demo_app import server

parser = argparse.ArgumentParser(prog="demo-app", description=server.HELP)
server.add_arguments(parser)
sys.exit(server.run(parser.parse_args()))
