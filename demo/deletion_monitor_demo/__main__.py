import sys

from deletion_monitor_demo.cli import main

sys.exit(main())
