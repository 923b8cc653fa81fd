import sys

from deletion_monitor.cli import main

sys.exit(main())
