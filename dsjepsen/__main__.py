import sys

from dsjepsen.cli import main

sys.exit(main())
