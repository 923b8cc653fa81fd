"""`python -m deletion_monitor_demo.app`: `deletion-monitor-demo app` on its own."""

import argparse
import sys

from deletion_monitor_demo.app import server

parser = argparse.ArgumentParser(prog="deletion-monitor-demo app", description=server.HELP)
server.add_arguments(parser)
sys.exit(server.run(parser.parse_args()))
